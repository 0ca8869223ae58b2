# A stand-in stateful program: counts to 60, saving its count where Plexus says
# ($PLX_CHECKPOINT) and starting from the count saved last.
import os, sys, time

path = os.environ.get("PLX_CHECKPOINT")
n = 0
if path and os.path.exists(path):
    with open(path) as f:
        n = int(f.read() or 0)
print("start", n, flush=True)
while n < 60:
    n += 1
    print(n, flush=True)
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(str(n))
        os.replace(path + ".tmp", path)
    time.sleep(0.1)
