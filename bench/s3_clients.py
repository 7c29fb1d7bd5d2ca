"""Which S3 library mx uses: put/get of 100 small objects and one 64 MiB object against a
local moto server, per client library, each in a fresh process (import time included).

    python bench/s3_clients.py [obstore boto3 s3fs] [--python PATH-FOR-s3fs]

Needs moto[server] (and the libraries) installed. The numbers behind the choice of obstore
are in docs/formats.md ("Object storage").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

SMALL, COUNT, BIG = 1024, 100, 64 * 2**20

CLIENT = r'''
import json, os, sys, time
t0 = time.perf_counter()
lib, endpoint, bucket = sys.argv[1:4]
SMALL, COUNT, BIG = 1024, 100, 64 * 2**20
small, big = os.urandom(SMALL), os.urandom(BIG)
out = {}
if lib == "obstore":
    import obstore
    from obstore.store import S3Store
    s = S3Store(bucket, endpoint=endpoint, region="us-east-1", access_key_id="x",
                secret_access_key="x", client_options={"allow_http": True})
    put = lambda k, d: obstore.put(s, k, d)
    get = lambda k: obstore.get(s, k).bytes()
elif lib == "boto3":
    import boto3
    c = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="x", aws_secret_access_key="x")
    put = lambda k, d: c.put_object(Bucket=bucket, Key=k, Body=d)
    get = lambda k: c.get_object(Bucket=bucket, Key=k)["Body"].read()
else:
    import s3fs
    fs = s3fs.S3FileSystem(key="x", secret="x", endpoint_url=endpoint,
                           client_kwargs={"region_name": "us-east-1"})
    put = lambda k, d: fs.pipe_file(f"{bucket}/{k}", d)
    get = lambda k: fs.cat_file(f"{bucket}/{k}")
out["import_s"] = time.perf_counter() - t0
for name, fn in [("put_small", lambda: [put(f"{lib}/s/{i}", small) for i in range(COUNT)]),
                 ("get_small", lambda: [get(f"{lib}/s/{i}") for i in range(COUNT)]),
                 ("put_64MiB", lambda: put(f"{lib}/big", big)),
                 ("get_64MiB", lambda: get(f"{lib}/big"))]:
    t = time.perf_counter(); fn(); out[name] = time.perf_counter() - t
print(json.dumps(out))
'''


def main() -> None:
    args = sys.argv[1:]
    other = sys.executable
    if "--python" in args:
        i = args.index("--python")
        other = args[i + 1]
        del args[i:i + 2]
    libs = args or ["obstore", "boto3"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="x", aws_secret_access_key="x").create_bucket(
                         Bucket="bench")
        for lib in libs:
            python = other if lib == "s3fs" else sys.executable
            got = subprocess.run([python, "-c", CLIENT, lib, endpoint, "bench"],
                                 capture_output=True, text=True, env=dict(os.environ))
            if got.returncode:
                print(lib, "failed:", got.stderr[-500:])
                continue
            times = json.loads(got.stdout)
            print(f"{lib:8s} " + "  ".join(f"{k} {v:6.2f}s" for k, v in times.items()))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
