#!/usr/bin/env bash
# `make demo`: train sampled YOSO (the compiled CPU kernel) at 2,048 tokens on a built-in long-context
# QA set, print its evaluation, answer three unseen documents through `yoso predict`, then time the
# same training step with softmax attention and with YOSO-E, each in its own child process (an
# out-of-memory softmax is reported, not fatal). Writes demo-output/summary.json. About 4-6 minutes
# on 2 cores. DEMO_STEPS, DEMO_SEQ_LEN, DEMO_DATASET and DEMO_OUTPUT override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
YOSO="$VENV/bin/yoso"
PY="$VENV/bin/python"
OUT=${DEMO_OUTPUT:-demo-output}
STEPS=${DEMO_STEPS:-200}
SEQ_LEN=${DEMO_SEQ_LEN:-2048}
DATASET=${DEMO_DATASET:-builtin:passkey}
NUM_HASH=32
BATCH=4
start=$(date +%s)

echo "== 1/5 compiled CPU kernel" >&2
if "$YOSO" build-kernels --no-cuda >&2; then
    KERNEL=compiled
    echo "kernel built and checked" >&2
else
    KERNEL=pure-pytorch
    echo "warning: the compiled CPU kernel could not be built here; sampled YOSO runs on its pure-PyTorch" \
        "path (same results, much slower)" >&2
fi

echo "== 2/5 train a tiny sampled-YOSO model ($NUM_HASH hashes, hash_code_len auto = log2 of the length)" \
    "on $DATASET: $STEPS steps of $BATCH documents of $SEQ_LEN tokens" >&2
rm -rf "$OUT"
mkdir -p "$OUT"
# YOSO-C (a 5-token convolution over the values) lets a head see its neighbours, which copying the
# number after "The pass key is" needs; the question is answered across windows of SEQ_LEN tokens.
"$YOSO" finetune --task qa --dataset "$DATASET" --model tiny --attention sampled --num-hash "$NUM_HASH" \
    --conv-window 5 --seq-len "$SEQ_LEN" --max-steps "$STEPS" --batch-size "$BATCH" --learning-rate 2e-3 \
    --dropout 0.0 --vocab-size 2000 --num-train 1200 --num-validation 100 --eval-every 0 --save-every 0 \
    --seed 0 --output-dir "$OUT/qa" > "$OUT/result.json"
TAU=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['hash_code_len'])" "$OUT/qa/final/config.json")

echo "== 3/5 evaluation on 100 held-out documents" >&2
"$PY" - "$OUT/result.json" <<'PY'
import json, sys
result = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
metrics = result["metrics"]
print(f"exact match {metrics['exact_match']:.1f}%   F1 {metrics['f1']:.1f}%   (chance: ~0%)   "
      f"validation loss {metrics['loss']:.3f}   model {result['final_dir']}", file=sys.stderr)
PY

echo "== 4/5 three unseen documents through \`yoso predict\`" >&2
"$PY" - "$SEQ_LEN" "$DATASET" > "$OUT/questions.jsonl" 2> "$OUT/keys.txt" <<'PY'
import json, sys
from yoso_core.data import load_task_data

# A seed the model never trained on; the answers go to a side file, not to the model.
data = load_task_data("qa", dataset=sys.argv[2], seed=2024, seq_len=int(sys.argv[1]), num_train=1, num_validation=3)
for i, record in enumerate(data["validation"]):
    print(json.dumps({"id": f"doc-{i}", "question": record["question"], "context": record["context"]}))
    print(record["answers"]["text"][0], file=sys.stderr)
PY
"$YOSO" predict --model "$OUT/qa/final" < "$OUT/questions.jsonl" > "$OUT/answers.jsonl"
"$PY" - "$OUT/questions.jsonl" "$OUT/answers.jsonl" "$OUT/keys.txt" > "$OUT/predictions.json" <<'PY'
import json, sys
questions = [json.loads(line) for line in open(sys.argv[1])]
answers = [json.loads(line) for line in open(sys.argv[2])]
keys = open(sys.argv[3]).read().split()
checked = []
for q, a, key in zip(questions, answers, keys):
    words = len(q["context"].split())
    right = a["answer"] == key
    print(f'{a["id"]}: {words} words, {q["question"]!r} -> {a["answer"]!r} (expected {key}, '
          f'score {a["score"]:.2f}) {"right" if right else "wrong"}', file=sys.stderr)
    checked.append({"id": a["id"], "question": q["question"], "answer": a["answer"], "expected": key, "right": right})
print(json.dumps(checked))
PY

echo "== 5/5 the same training step (batch $BATCH x $SEQ_LEN tokens, forward + backward + AdamW) with each" \
    "attention, in child processes" >&2
"$PY" scripts/demo_summary.py baselines --attentions sampled expectation softmax --seq-len "$SEQ_LEN" \
    --batch-size "$BATCH" --vocab-size 2000 --num-hash "$NUM_HASH" --hash-code-len "$TAU" --steps 3 \
    --timeout 150 --rounds 2 --out "$OUT/baselines.json"

elapsed=$(( $(date +%s) - start ))
"$PY" scripts/demo_summary.py summary --result "$OUT/result.json" --metrics "$OUT/qa/metrics.jsonl" \
    --baselines "$OUT/baselines.json" --predictions "$OUT/predictions.json" --attention sampled \
    --seq-len "$SEQ_LEN" --hash-code-len "$TAU" --num-hash "$NUM_HASH" \
    --extra "{\"dataset\": \"$DATASET\", \"kernel\": \"$KERNEL\", \"conv_window\": 5, \"seconds\": $elapsed}" \
    --out "$OUT/summary.json" > /dev/null
"$PY" - "$OUT/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
def rate(v):
    return f"{v:,.0f} tokens/s" if v else "out of memory / failed"
def mem(v):
    return f"{v:,.0f} MiB" if v else "-"
print(f"sampled YOSO at {s['seq_len']} tokens: exact match {s['metrics']['exact_match']:.1f}% after {s['steps']} steps,"
      f" training at {rate(s['tokens_per_second'])}", file=sys.stderr)
base = s.get("sampled") or {}
for name in ("softmax", "expectation"):
    b = s[name]
    gain = f", sampled YOSO's step is {b['sampled_speedup']}x as fast" if b.get("sampled_speedup") else ""
    print(f"  timed step {name:11s}: {rate(b['tokens_per_second'])}, peak {mem(b['peak_mib'])} ({b['status']}){gain}",
          file=sys.stderr)
print(f"  timed step sampled    : {rate(base.get('tokens_per_second'))}, peak {mem(base.get('peak_mib'))} "
      f"({base.get('kernel')} kernel)", file=sys.stderr)
PY
echo "demo finished in $(( $(date +%s) - start )) s; outputs in $OUT/ (summary: $OUT/summary.json)" >&2
echo "pass-key is answered from its own sentence; for what sampled YOSO learns against softmax on" \
    "associative recall (builtin:recall), see docs/quality.md" >&2
