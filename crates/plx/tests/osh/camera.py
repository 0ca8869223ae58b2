# A stand-in camera: one JSON frame every 50 ms; every fifth shows motion.
import json, sys, time

for i in range(1, int(sys.argv[1]) + 1):
    print(json.dumps({"index": i, "motion": i % 5 == 0}), flush=True)
    time.sleep(0.05)
