#!/usr/bin/env python3
"""End-to-end check of the CUDA backend through specserve-generate.

For each model: greedy output on the GPU with every speculation mode must equal
the GPU's plain greedy output token for token (the lossless contract), and the
GPU's plain output is compared with the CPU's (float rounding differs between
the backends, so this reports the tokens that agree before the first
difference rather than failing). Then decode throughput, plain and speculative,
on a random-weight model of a realistic shape written by specserve-model.

  scripts/gpu/e2e_check.py BUNDLE_DIR [OUT_DIR]

Exits 1 when a lossless check fails or a run errors.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

BUNDLE = sys.argv[1]
OUT = sys.argv[2] if len(sys.argv) > 2 else "."
BIN = os.path.join(BUNDLE, "bin")
MODELS = os.path.join(BUNDLE, "models")
PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom went to the park",
           "One day, a big bear"]
failures = []
# E2E_GPU_DEVICE=cpu dry-runs the script on a machine without a GPU.
GPU = os.environ.get("E2E_GPU_DEVICE", "cuda")
log = open(os.path.join(OUT, "e2e.log"), "w")


def generate(model, device, spec, n, extra=(), prompts=PROMPTS, timeout=240):
    path = os.path.join(OUT, "prompts.txt")
    with open(path, "w") as f:
        f.write("\n".join(prompts) + "\n")
    cmd = [os.path.join(BIN, "specserve-generate"), "--model", model, "--prompts", path,
           "-n", str(n), "--json", "--ignore_eos", "--device", device, "--spec", spec,
           *extra]
    start = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        failures.append(f"{os.path.basename(model)} {device} {spec}: timed out")
        return None
    log.write(f"$ {' '.join(cmd)}  ({time.time() - start:.1f} s, rc {p.returncode})\n")
    log.write(p.stderr[-4000:] + "\n")
    if p.returncode != 0:
        failures.append(f"{os.path.basename(model)} {device} {spec}: rc {p.returncode}: "
                        f"{p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''}")
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def agree(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def check_model(name, model, extra=()):
    print(f"== {name}")
    cpu = generate(model, "cpu", "off", 64, extra)
    gpu = generate(model, GPU, "off", 64, extra)
    if not gpu:
        return
    if cpu:
        common = [agree(a, b) for a, b in zip(cpu["ids"], gpu["ids"])]
        print(f"  cuda off vs cpu off: tokens agreeing before the first difference {common} of 64")
        print(f"  cpu: {cpu['text'][0][:70]!r}")
        print(f"  gpu: {gpu['text'][0][:70]!r}")
    for spec in ["chain:4", "tree:16", "auto"]:
        out = generate(model, GPU, spec, 64, extra)
        if not out:
            continue
        same = out["ids"] == gpu["ids"]
        print(f"  cuda {spec:8s}: equals cuda off: {same}, tokens/step "
              f"{out.get('mean_tokens_per_step', 0):.2f}")
        if not same:
            failures.append(f"{name} cuda {spec} differs from cuda off")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def serve_check(name, model, spec, extra=()):
    """specserve-serve on the GPU answers concurrent OpenAI completions with the
    tokens specserve-generate decodes plainly (greedy), whatever its speculation."""
    want = generate(model, GPU, "off", 48, extra)
    if not want:
        return
    port = free_port()
    cmd = [os.path.join(BIN, "specserve-serve"), "--model", model, "--device", GPU,
           "--listen", "127.0.0.1:0", "--http_listen", f"127.0.0.1:{port}", "--spec", spec, *extra]
    server = subprocess.Popen(cmd, stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        served = None
        for _ in range(300):
            try:
                served = http_json(base + "/v1/models", timeout=2)["data"][0]["id"]
                break
            except Exception:
                if server.poll() is not None:
                    break
                time.sleep(0.2)
        if served is None:
            failures.append(f"serve {name}: no HTTP answer (rc {server.poll()})")
            return
        got = [None] * len(PROMPTS)

        def ask(i):
            try:
                answer = http_json(base + "/v1/completions",
                                   {"model": served, "prompt": PROMPTS[i], "max_tokens": 48,
                                    "temperature": 0, "ignore_eos": True})
                got[i] = answer["choices"][0]["text"]
            except Exception as e:  # recorded as a mismatch below
                got[i] = f"<error {e}>"

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(PROMPTS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        same = [PROMPTS[i] + (got[i] or "") == want["text"][i] for i in range(len(PROMPTS))]
        print(f"  served ({spec}, {len(PROMPTS)} concurrent HTTP completions) equal generate's "
              f"plain output: {same}")
        if not all(same):
            failures.append(f"serve {name} --spec {spec}: {got} vs {want['text']}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


check_model("stories260K", os.path.join(MODELS, "stories260K.gguf"))
serve_check("stories260K", os.path.join(MODELS, "stories260K.gguf"), "tree:16")
check_model("TinyStories-656K", os.path.join(MODELS, "TinyStories-656K"))
check_model("babyllama-tok105", os.path.join(MODELS, "babyllama-tok105", "model5000.bin"),
            ["--tokenizer", os.path.join(MODELS, "babyllama-tok105", "tok105.bin")])

# Throughput on a random-weight model of a realistic shape (Llama-2-ish, 1.1B:
# dim 2048, 22 layers, GQA 32/4, ffn 5632).
big = os.path.join(OUT, "random_1b.gguf")
shape = ["--dim", "2048", "--layers", "22", "--heads", "32", "--kv-heads", "4", "--ffn", "5632"]
if os.environ.get("E2E_GPU_DEVICE") == "cpu":  # dry run: a small shape
    shape = ["--dim", "128", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--ffn", "256"]
cmd = [os.path.join(BIN, "specserve-model"), "random", "--out", big, *shape,
       "--context", "4096", "--vocab-from", os.path.join(MODELS, "stories260K.gguf"),
       "--type", "bf16", "--quiet"]
p = subprocess.run(cmd, capture_output=True, text=True)
log.write(f"$ {' '.join(cmd)} rc {p.returncode}\n{p.stderr[-2000:]}\n")
if p.returncode != 0:
    failures.append(f"specserve-model random: {p.stderr.strip()[-300:]}")
else:
    def throughput(label, prompts, specs):
        """Each mode twice, interleaved; every mode's tokens must equal plain decoding's."""
        base = None
        for spec in specs * 2:
            out = generate(big, GPU, spec, 128, prompts=prompts)
            if not out:
                continue
            t = out["timings"]
            print(f"  {label} {spec:8s}: decode {t['decode_tokens_per_second']:9.1f} tok/s, "
                  f"prefill {t['prefill_tokens_per_second']:9.1f} tok/s "
                  f"({out['prompt_tokens']} tokens), "
                  f"tokens/step {out.get('mean_tokens_per_step', 0):.2f}")
            if spec == "off":
                base = out["ids"]
            elif base is not None and out["ids"] != base:
                failures.append(f"random 1.1B {label} {spec} differs from off")

    print("== random 1.1B-shape (dim 2048, 22 layers, GQA 32/4, bf16), greedy, 128 new tokens")
    serve_check("random 1.1B", big, "chain:4")
    for batch in [1, 32]:
        throughput(f"batch {batch:2d}",
                   [PROMPTS[i % len(PROMPTS)] + " and then" * (i % 3) for i in range(batch)],
                   ["off", "chain:4", "auto"])
    # Long context, where MagicDec's window-cache draft is cheap beside the
    # target's full-cache verify: 16 prompts of ~1500 tokens.
    story = ("Once upon a time there was a little girl named Lily who loved to play in the park "
             "with her dog and her friends, and one day she found a big red ball under a tree. ")
    throughput("batch 16 x ~1500", [f"{i} " + story * 27 for i in range(16)],
               ["off", "chain:4", "tree:16", "auto"])
    os.remove(big)

print("FAILURES:" if failures else "e2e: all lossless checks passed")
for f in failures:
    print("  " + f)
sys.exit(1 if failures else 0)
