"""The floor of bench/send-throughput.mjs: a plain SMTP client (Python's smtplib) sending the
same letters to the same sink over the same number of connections, with the same number open at
once. Reads the sample letters (one per file) from a directory; prints one JSON line.

usage: smtp-floor.py PORT SAMPLES_DIR LETTERS CONNECTIONS PARALLEL
"""

import json
import os
import smtplib
import sys
import threading
import time


def main():
    port, samples_dir, letters, connections, parallel = sys.argv[1:6]
    port, letters, connections, parallel = int(port), int(letters), int(connections), int(parallel)
    samples = []
    for name in sorted(os.listdir(samples_dir)):
        with open(os.path.join(samples_dir, name), "rb") as f:
            samples.append(f.read())
    per_connection = -(-letters // connections)
    lock = threading.Lock()
    state = {"next_connection": 0, "sent": 0}

    def worker():
        while True:
            with lock:
                c = state["next_connection"]
                if c >= connections:
                    return
                state["next_connection"] += 1
            first = c * per_connection
            count = max(0, min(per_connection, letters - first))
            if count == 0:
                return
            s = smtplib.SMTP("127.0.0.1", port)
            s.ehlo("floor.example")
            for i in range(first, first + count):
                s.sendmail("hi@bench.example", [f"c{i}@bench.example"], samples[i % len(samples)])
            s.quit()
            with lock:
                state["sent"] += count

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - t0
    print(json.dumps({"letters": state["sent"], "seconds": seconds}))


if __name__ == "__main__":
    main()
