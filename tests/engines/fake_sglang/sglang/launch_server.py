"""Accepts SGLang's launch flags, serves the simulated SGLang API on --host/--port under
--served-model-name. Lets tests exercise sglfleet's managed-SGLang path without a GPU."""

import argparse
import os
import sys

from sglfleet.sim.__main__ import main

p = argparse.ArgumentParser()
p.add_argument("--model-path", required=True)
p.add_argument("--served-model-name")
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port", type=int, default=30000)
args, unknown = p.parse_known_args()
print(f"fake sglang: model {args.model_path}, ignoring {unknown}", flush=True)
sys.argv = ["sim", "--host", args.host, "--port", str(args.port),
            "--model-name", args.served_model_name or "default", "--ttft-ms", "5", "--itl-ms", "1",
            *os.environ.get("FAKE_SGLANG_SIM_ARGS", "").split()]  # e.g. --slow-start-s 3 --memory-mb 64
main()
