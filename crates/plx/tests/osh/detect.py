# A stand-in motion detector: passes on the frames that show motion.
import json, sys

for line in sys.stdin:
    frame = json.loads(line)
    if frame["motion"]:
        print(json.dumps({"index": frame["index"], "alarm": True}), flush=True)
