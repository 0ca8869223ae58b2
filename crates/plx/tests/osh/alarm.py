# A stand-in alarm: says which frame raised it.
import json, sys

for line in sys.stdin:
    print("ALARM", json.loads(line)["index"], flush=True)
