#!/usr/bin/env bash
# What a machine with GPUs checks in under 8 minutes, ending with one table:
#   1. the quickstart pipeline (recipes/pipeline.yaml) in bf16: wall time and test accuracy per stage;
#   2. recipes/accelerate/fsdp.yaml, deepspeed_zero2.yaml and deepspeed_zero3.yaml on every GPU present: 5 SFT steps
#      of a tiny MathGPT each, with how the run was really distributed (accelerate's distributed type and the
#      wrapper around the model: a config that silently fell back to DDP shows here) and whether the saved model
#      loads and differs from the start;
#   3. one LoRA GRPO step of recipes/qwen2.5-0.5b/grpo_gsm8k.yaml on a tiny Qwen2 and GSM8K-like rows built here
#      (the machine needs no Hub access).
#
#   bash benchmarks/gpu_check.sh                          # on the GPU machine, from anywhere in the checkout
#   GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh      # the same parts cut down, on 2 CPU processes (no GPU)
#
# Settings (environment): PYTHON (default .venv/bin/python, else python3), GPU_CHECK_DIR (default runs/gpu-check,
# emptied first), GPU_CHECK_BUDGET_S (default 470: the parts share it; a part that would overrun is cut off and
# says so), GPU_CHECK_PARTS (default "quickstart fsdp deepspeed_zero2 deepspeed_zero3 grpo-qwen2-gsm8k": the parts to
# run, e.g. GPU_CHECK_PARTS="deepspeed_zero3 grpo-qwen2-gsm8k" to finish a check cut short),
# GPU_CHECK_INSTALL_DEEPSPEED=1 (pip install deepspeed when missing; needs PyPI). Exit status 1 when a part failed or
# timed out (the table says which, and where its log is).
set -euo pipefail

cd "$(dirname "$0")/.."
DRY_RUN=${GPU_CHECK_DRY_RUN:-0}
[[ "${1:-}" == "--cpu-smoke" ]] && DRY_RUN=1
if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON; elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
WORK=${GPU_CHECK_DIR:-runs/gpu-check}
rm -rf "$WORK"
mkdir -p "$WORK/logs" "$WORK/probe"
WORK=$(cd "$WORK" && pwd)
export OMP_WAIT_POLICY=PASSIVE TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1

if [[ "$DRY_RUN" == 1 ]]; then
  export CUDA_VISIBLE_DEVICES="" DS_ACCELERATOR=cpu
  NPROC=2
  MIXED=(--mixed_precision no)   # the configs' bf16 is for GPUs
  BUDGET=${GPU_CHECK_BUDGET_S:-1200}
  MACHINE="CPU smoke run (GPU_CHECK_DRY_RUN=1): $NPROC CPU processes, fp32, every part cut down"
else
  NPROC=$(nvidia-smi -L | wc -l)
  (( NPROC > 0 )) || { echo "gpu_check: nvidia-smi lists no GPU (for a CPU run: GPU_CHECK_DRY_RUN=1)" >&2; exit 2; }
  MIXED=()
  BUDGET=${GPU_CHECK_BUDGET_S:-470}
  MACHINE="$NPROC x $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
fi
PARTS=" ${GPU_CHECK_PARTS:-quickstart fsdp deepspeed_zero2 deepspeed_zero3 grpo-qwen2-gsm8k} "
wanted() { [[ "$PARTS" == *" $1 "* ]]; }
START=$(date +%s)
ROWS=()     # part <TAB> status <TAB> seconds <TAB> details
FAILED=0

row() {  # part status seconds details (a part skipped for time says so instead of its usual details)
  local details=$4
  [[ "$2" == skipped && "$details" != deepspeed* ]] && details="not run: the time budget (${BUDGET} s) was spent"
  ROWS+=("$1"$'\t'"$2"$'\t'"$3"$'\t'"$details")
}

print_table() {
  echo
  echo "gpu_check: $MACHINE; $(( $(date +%s) - START )) s in all; logs under $WORK/logs"
  printf '%-20s %-8s %7s  %s\n' part status seconds details
  printf '%-20s %-8s %7s  %s\n' -------------------- -------- ------- -------
  local line part status seconds details
  for line in "${ROWS[@]}"; do
    IFS=$'\t' read -r part status seconds details <<< "$line"
    printf '%-20s %-8s %7s  %s\n' "$part" "$status" "$seconds" "$details"
  done
}

# run_part NAME CAP_SECONDS COMMAND...: run with a time limit (the cap, or what is left of the budget), log to
# $WORK/logs/NAME.log; sets PART_STATUS (ok / FAILED / TIMEOUT / skipped) and PART_SECONDS.
run_part() {
  local name=$1 cap=$2 left code
  shift 2
  left=$(( START + BUDGET - $(date +%s) ))
  (( cap < left )) || cap=$left
  PART_SECONDS=0
  if (( cap < 15 )); then
    PART_STATUS=skipped; FAILED=1
    echo "== $name: skipped, the time budget (${BUDGET} s) is spent"
    return
  fi
  echo "== $name (at most $cap s; log: $WORK/logs/$name.log)"
  local t0=$SECONDS
  set +e
  timeout --kill-after=15 "$cap" "$@" > "$WORK/logs/$name.log" 2>&1
  code=$?
  set -e
  PART_SECONDS=$(( SECONDS - t0 ))
  case $code in
    0) PART_STATUS=ok ;;
    124|137) PART_STATUS=TIMEOUT; FAILED=1 ;;
    *) PART_STATUS=FAILED; FAILED=1; tail -n 25 "$WORK/logs/$name.log" | sed 's/^/   | /' ;;
  esac
  echo "   $PART_STATUS in $PART_SECONDS s"
}

# --- setup: a tiny MathGPT, a tiny Qwen2 with a tokenizer, GSM8K-like rows, and the launch probe ------------------
cat > "$WORK/setup.py" <<'EOF'
import json, random, sys
from pathlib import Path

from transformers import Qwen2Config, Qwen2ForCausalLM

import data_builders
import mathalign

work = Path(sys.argv[1])
# A 2-block MathGPT with a tokenizer trained on arithmetic text: what the FSDP / DeepSpeed runs fine-tune.
texts = data_builders.get_builder("pretrain").build(num_train=2000, num_validation=0, num_test=0, num_test_ood=0,
                                                    seed=0, progress=False)["train"]["text"]
tokenizer = mathalign.train_tokenizer(texts, vocab_size=320)
config = mathalign.MathGPTConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
                                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
mathalign.MathGPTForCausalLM(config).save_pretrained(work / "mathgpt")
tokenizer.save_pretrained(work / "mathgpt")

# GSM8K-like rows (question, answer ending in `#### N`) as train.jsonl / test.jsonl, what the gsm8k builder reads.
rng = random.Random(0)
def row():
    a, b, who, what = rng.randint(2, 60), rng.randint(2, 60), rng.choice(["Ann", "Tom", "Mia"]), rng.choice(["pens", "coins"])
    return {"question": f"{who} has {a} {what} and gets {b} more. How many {what} does {who} have now?",
            "answer": f"{who} has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} {what}.\n#### {a + b}"}
(work / "gsm8k").mkdir()
for split, n in (("train", 64), ("test", 8)):
    rows = [row() for _ in range(n)]
    (work / "gsm8k" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

# A tiny Qwen2 (random weights) with a byte-level tokenizer trained on those rows and the prompt's instruction.
words = [r["question"] + " " + r["answer"] for r in rows] + ['Solve step by step and end with the final answer as "#### <number>".']
qwen_tokenizer = mathalign.train_tokenizer(words * 8 + list(texts[:500]), vocab_size=400)
qwen = Qwen2Config(vocab_size=len(qwen_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
                   pad_token_id=qwen_tokenizer.pad_token_id, bos_token_id=qwen_tokenizer.bos_token_id,
                   eos_token_id=qwen_tokenizer.eos_token_id)
Qwen2ForCausalLM(qwen).save_pretrained(work / "qwen2-tiny")
qwen_tokenizer.save_pretrained(work / "qwen2-tiny")
print("setup done:", ", ".join(str(work / d) for d in ("mathgpt", "gsm8k", "qwen2-tiny")))
EOF

cat > "$WORK/probe/gpu_check_probe.py" <<'EOF'
"""`python -m mathalign.train ARGS`; the main process also writes GPU_CHECK_RECORD: how the run was really
distributed (accelerate's distributed type, the wrapper around the model, the ZeRO stage)."""
import json, os, sys

from transformers import Trainer

import mathalign.train as train

def fit(self, *args, _train=Trainer.train, **kwargs):
    result = _train(self, *args, **kwargs)
    engine = self.model_wrapped
    if self.accelerator.is_main_process:
        with open(os.environ["GPU_CHECK_RECORD"], "w") as f:
            json.dump(dict(distributed_type=self.accelerator.distributed_type.value, wrapper=type(engine).__name__,
                           processes=self.accelerator.num_processes, train_loss=round(result.training_loss, 4),
                           zero_stage=getattr(engine, "zero_optimization_stage", lambda: None)()), f)
    return result

Trainer.train = fit
try:
    code = train.cli()
finally:  # without it gloo's threads can abort the process at exit (SIGABRT; pytorch/pytorch#190489)
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()
sys.exit(code)
EOF

# check_saved.py BASE RUN RECORD EXPECTED: the table's line for a config run, once its saved model loaded in a fresh
# process; exit status 3 when the run was not distributed as EXPECTED (accelerate's distributed type).
cat > "$WORK/check_saved.py" <<'EOF'
import json, sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import mathalign  # noqa: F401  (MathGPT for the Auto classes)

base, run, record, expected = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text()), sys.argv[4]
start, saved = load_file(str(base / "model.safetensors")), load_file(str(run / "model.safetensors"))
# Compared in the saved dtype: a ZeRO-3 model gathered in 16 bit is not "changed" by the cast alone.
moved = sum(not torch.equal(start[k].to(saved[k].dtype), saved[k]) for k in start)
logits = AutoModelForCausalLM.from_pretrained(run)(input_ids=torch.tensor([[1, 2, 3]])).logits
zero = f", ZeRO-{record['zero_stage']}" if record["zero_stage"] else ""
print(f"ran as {record['distributed_type']} ({record['wrapper']}{zero}) on {record['processes']} process(es), "
      f"loss {record['train_loss']}, tensors changed {moved}/{len(start)}, saved model "
      + ("loads" if torch.isfinite(logits).all() else "gives non-finite logits")
      + ("" if record["distributed_type"] == expected else f"; EXPECTED {expected}"))
sys.exit(0 if record["distributed_type"] == expected and moved and torch.isfinite(logits).all() else 3)
EOF

run_part setup 120 "$PY" "$WORK/setup.py" "$WORK"
row setup "$PART_STATUS" "$PART_SECONDS" "tiny MathGPT, tiny Qwen2 + tokenizer, GSM8K-like rows under $WORK"
[[ "$PART_STATUS" == ok ]] || { print_table; exit 1; }

# --- 1. the quickstart pipeline ----------------------------------------------------------------------------------
if wanted quickstart; then
PIPELINE=recipes/pipeline.yaml
if [[ "$DRY_RUN" == 1 ]]; then
  PIPELINE=$WORK/pipeline-smoke.yaml
  "$PY" - "$PIPELINE" <<'EOF'
import sys, yaml
pipeline = yaml.safe_load(open("recipes/pipeline.yaml"))
for name, stage in pipeline["stages"].items():
    options = stage["data_options"]
    options.update(num_train=256 if name in ("pretrain", "sft") else 32, num_validation=16, num_test=16)
    if "train_offset" in options:
        options["train_offset"] = 256
    for key in ("num_train_epochs", "save_steps", "save_total_limit"):
        stage.pop(key, None)
    stage.update(max_steps=2, save_strategy="no", logging_steps=1)
    if name == "grpo":
        stage["per_device_train_batch_size"] = 2 * stage["num_generations"]
pipeline["evaluation"].update(num_samples=16)
pipeline["evaluation"]["data_options"].update(num_validation=16, num_test=16)
yaml.safe_dump(pipeline, open(sys.argv[1], "w"), sort_keys=False)
EOF
fi
# The pipeline gets what the budget leaves after ~150 s kept for parts 2 and 3.
run_part quickstart $(( BUDGET - 150 - ( $(date +%s) - START ) )) \
  "$PY" -m mathalign.cli quickstart --pipeline "$PIPELINE" --run_dir "$WORK/quickstart"
QUICK_STATUS=$PART_STATUS
"$PY" - "$WORK/quickstart" "$QUICK_STATUS" "$PART_SECONDS" > "$WORK/quickstart-rows.tsv" <<'EOF'
import json, sys
from pathlib import Path
run, status, seconds = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
evaluation = summary.get("evaluation") or {}
if status == "skipped":
    sys.exit(print("quickstart\tskipped\t0\tnot run: the time budget was spent"))
print(f"quickstart\t{status}\t{seconds}\twhole pipeline, evaluation included"
      + ("" if summary else " (no summary.json: stages below are those that finished)"))
for stage in ("pretrain", "sft", "dpo", "grpo"):
    results = run / stage / "train_results.json"
    if stage not in summary.get("stage_seconds", {}) and not results.is_file():
        continue
    wall = summary.get("stage_seconds", {}).get(stage)
    trainer = json.loads(results.read_text()).get("train_runtime") if results.is_file() else None
    accuracy = evaluation.get(stage, {}).get("accuracy")
    detail = "accuracy " + (f"{100 * accuracy:.1f}%" if accuracy is not None else "-")
    detail += f", trainer {trainer:.1f} s" if trainer is not None else ""
    print(f"  {stage}\t{'ok' if results.is_file() else 'partial'}\t{wall if wall is not None else '-'}\t{detail}")
EOF
while IFS= read -r line; do ROWS+=("$line"); done < "$WORK/quickstart-rows.tsv"
fi

# --- 2. FSDP and DeepSpeed ZeRO-2/3 on every GPU -------------------------------------------------------------------
if ! "$PY" -c "import deepspeed" > /dev/null 2>&1 && [[ "${GPU_CHECK_INSTALL_DEEPSPEED:-0}" == 1 ]]; then
  run_part install-deepspeed 180 "$PY" -m pip install deepspeed
fi
HAS_DEEPSPEED=0
"$PY" -c "import deepspeed" > /dev/null 2>&1 && HAS_DEEPSPEED=1
DATA='{"task": ["arithmetic"], "num_train": 2048, "num_validation": 0, "num_test": 0, "num_test_ood": 0, "seed": 0}'
for config in fsdp deepspeed_zero2 deepspeed_zero3; do
  wanted "$config" || continue
  if [[ "$config" == deepspeed* && "$HAS_DEEPSPEED" == 0 ]]; then
    row "$config" skipped 0 "deepspeed is not installed (GPU_CHECK_INSTALL_DEEPSPEED=1 installs it from PyPI)"
    continue
  fi
  record="$WORK/$config.json"
  run_part "$config" 90 env PYTHONPATH="$WORK/probe${PYTHONPATH:+:$PYTHONPATH}" GPU_CHECK_RECORD="$record" \
    "$PY" -m accelerate.commands.launch --config_file "recipes/accelerate/$config.yaml" --num_processes "$NPROC" \
    "${MIXED[@]}" --main_process_port 0 -m gpu_check_probe recipes/sft.yaml \
    --model_name_or_path "$WORK/mathgpt" --data_options "$DATA" --output_dir "$WORK/$config" --max_steps 5 \
    --per_device_train_batch_size 16 --eval_strategy no --save_strategy no --logging_steps 1 --report_to none
  # On a CPU, accelerate 1.16 runs the FSDP config as plain DDP (MULTI_CPU; recipes/README.md): expected there.
  expected=DEEPSPEED
  [[ "$config" == fsdp ]] && { [[ "$DRY_RUN" == 1 ]] && expected=MULTI_CPU || expected=FSDP; }
  detail="no record (see the log)"
  if [[ -f "$record" ]]; then
    set +e
    detail=$("$PY" "$WORK/check_saved.py" "$WORK/mathgpt" "$WORK/$config" "$record" "$expected" \
             2> "$WORK/logs/$config-check.log")
    code=$?
    set -e
    if (( code != 0 )); then
      PART_STATUS=FAILED; FAILED=1
      [[ -n "$detail" ]] || detail="the saved model did not load (log: $WORK/logs/$config-check.log)"
    fi
  fi
  row "$config" "$PART_STATUS" "$PART_SECONDS" "$detail"
done

# --- 3. one LoRA GRPO step of the Qwen2.5 GSM8K recipe on a tiny local Qwen2 --------------------------------------
if wanted grpo-qwen2-gsm8k; then
GRPO_DTYPE=()
[[ "$DRY_RUN" == 1 ]] && GRPO_DTYPE=(--dtype float32)  # the recipe's bf16 weights are for GPUs
run_part grpo-qwen2-gsm8k 120 "$PY" -m mathalign.cli train recipes/qwen2.5-0.5b/grpo_gsm8k.yaml \
  --model_name_or_path "$WORK/qwen2-tiny" \
  --data_options "{\"source\": \"$WORK/gsm8k\", \"style\": \"rl\", \"num_validation\": 8}" \
  --output_dir "$WORK/grpo-qwen2" --max_steps 1 --per_device_train_batch_size 8 --gradient_accumulation_steps 1 \
  --max_completion_length 32 --warmup_steps 0 --logging_steps 1 --save_strategy no --report_to none \
  "${GRPO_DTYPE[@]}"
detail="no adapter written (see the log)"
if [[ -f "$WORK/grpo-qwen2/adapter_model.safetensors" ]]; then
  detail=$("$PY" -c "import json, sys; s = json.load(open(sys.argv[1])); l = [e for e in s['log_history'] if 'reward' in e]
print(f\"LoRA adapter written, global_step {s['global_step']}, reward {l[-1]['reward'] if l else '-'}\")" \
    "$WORK/grpo-qwen2/trainer_state.json")
fi
row grpo-qwen2-gsm8k "$PART_STATUS" "$PART_SECONDS" "$detail"
fi

# --- the table -----------------------------------------------------------------------------------------------------
print_table
exit "$FAILED"
