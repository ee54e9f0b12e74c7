"""Peers suite: d3rlpy's DecisionTransformer side by side with ours, on the same dataset at the same size.

    python scripts/benchmark.py --suite peers --cpu-threads 1                  # the peer from ~/.cache/decision-backbones/peers-venv
    python scripts/benchmark.py --suite peers --cpu-threads 1 --make-peer-env  # make that venv first (network, minutes)
    python scripts/benchmark.py --suite peers --peer-python /path/to/python    # any python that has d3rlpy 2.8.1

Candidates: ours (--peers-backbones, default transformer and minGRU, untrained, DT size: embed 128,
3 layers, 1 head, dropout 0.1, K = 20, batch 64, on the built-in dataset) and the peer, d3rlpy
2.8.1's DecisionTransformer at the same size on the same episodes, run by agents/benchmarks/
peer_d3rlpy.py in its own environment (agents/benchmarks/peer_process.py says why and how). In
each of --repeats rounds, every candidate runs once in turn (ours one after the other, then the
peer), so a load that comes and goes on a shared machine slows them alike:
- training: --peers-train-steps steps after --peers-warmup-steps (ours: the trainer's train_step,
  as agents/benchmarks/training.py times it; the peer: d3rlpy's own `fit` loop) -> samples/s;
- evaluation, --episodes x --max-steps on the benchmark env (InvertedDoublePendulum-v5 without
  termination, so every episode is full length): ours with the evaluator (one vector env, window
  and recurrent mode) and the DT/CORL loop emulation (agents/benchmarks/evaluation.py, one env,
  --baseline-episodes); the peer with d3rlpy's own `evaluate_transformer_with_environment` (one env,
  one episode at a time, its StatefulTransformerWrapper re-running the last K steps) -> env steps/s.
Medians over the rounds; vs_d3rlpy is ours / the peer's median, and per_round the same ratio within
each round. Both sides run --cpu-threads torch threads (the peer also gets OMP/MKL_NUM_THREADS).
Without the peer environment the suite prints how to make it and measures our rows alone.
"""

from __future__ import annotations

import importlib.metadata
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

from agents.benchmarks.evaluation import (
    BENCHMARK_BASE_ENV,
    TARGET,
    benchmark_env_spec,
    dt_style_evaluation,
)
from agents.benchmarks.options import AgentBenchmarkArgs
from agents.benchmarks.peer_process import (
    find_peer_python,
    how_to_make_peer_env,
    run_peer,
    write_peer_episodes,
)
from agents.benchmarks.training import time_in_turns
from agents.benchmarks.untrained import (
    benchmark_store,
    untrained_model,
    untrained_trainer,
)
from agents.evaluator import evaluate
from sequence_models.benchmarks.tables import Table, ratio, target_row

CONTEXT_LEN = 20
PEER = "d3rlpy DecisionTransformer"
PEER_EVAL = "d3rlpy evaluate_transformer_with_environment (1 env, K-window)"
EMULATION = "DT/CORL loop emulation (ours, 1 env, K-window)"
NO_PEER = "no d3rlpy environment: --make-peer-env or --peer-python"


def _our_round(name: str, trainer, model, spec, args: AgentBenchmarkArgs, first: bool) -> dict:
    """One round of one of our backbones: {measurement: rate}."""
    seconds = time_in_turns({name: trainer}, args.peers_train_steps, 1, warmup=args.peers_warmup_steps if first else 0)[name]
    rates = {"train": args.train_batch / seconds}
    steps, elapsed, _ = dt_style_evaluation(model, spec, args.baseline_episodes, CONTEXT_LEN, TARGET)
    rates[EMULATION] = steps / elapsed
    for mode in ("window", "recurrent"):
        report = evaluate(model, spec, [TARGET], args.episodes, mode=mode, context_len=CONTEXT_LEN, seed=0,
                          vectorization="sync", kv_steps=args.eval_kv_steps)
        rates[f"ours, vector env, {mode}"] = report.env_steps / report.seconds
    return rates


def _peer_settings(args: AgentBenchmarkArgs) -> dict:
    return {"env_id": BENCHMARK_BASE_ENV, "max_steps": args.max_steps, "eval_episodes": args.episodes, "target": TARGET,
            "train_steps": args.peers_train_steps, "warmup_steps": args.peers_warmup_steps, "embed": args.embed,
            "layers": args.n_layers, "heads": 1, "context": CONTEXT_LEN, "batch": args.train_batch, "dropout": 0.1}


def measure_rounds(args: AgentBenchmarkArgs, device: torch.device, peer_python: Path | None) -> tuple[dict, list[dict]]:
    """({backbone: [round rates]} for ours, [round results] of the peer (empty without one))."""
    store = benchmark_store()
    spec = benchmark_env_spec(args.max_steps)
    size = args.model_size
    trainers = {n: untrained_trainer(n, store, CONTEXT_LEN, args.train_batch, size, device) for n in args.peers_backbones}
    models = {n: untrained_model(n, store, CONTEXT_LEN, size, device) for n in args.peers_backbones}
    threads = args.cpu_threads or torch.get_num_threads()
    ours: dict[str, list[dict]] = {n: [] for n in args.peers_backbones}
    peer: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        episodes = write_peer_episodes(store.episodes, Path(tmp) / "episodes.npz")
        for r in tqdm(range(args.repeats), desc="peers rounds"):
            for name in args.peers_backbones:
                ours[name].append(_our_round(name, trainers[name], models[name], spec, args, first=r == 0))
            if peer_python is not None:
                peer.append(run_peer(peer_python, episodes, _peer_settings(args), threads))
    return ours, peer


def _median(values: list) -> float | str:
    return statistics.median(values) if values else ""


def _compare(ours: list[float], peer: list[float]) -> dict:
    """Median rate, its ratio to the peer's median, and the ratio within each round."""
    per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(ours, peer)) if peer else ""
    return {"median": _median(ours), "vs_d3rlpy": ratio(_median(ours), _median(peer)), "per_round": per_round}


def peer_tables(ours: dict[str, list[dict]], peer: list[dict], args: AgentBenchmarkArgs) -> list[Table]:
    """Training, evaluation, targets and versions tables from the rounds."""
    peer_train = [p["samples_per_s"] for p in peer]
    peer_eval = [p["eval_env_steps_per_s"] for p in peer]
    train_rows = [{"side": "d3rlpy 2.8.1" if peer else "d3rlpy (not run)", "backbone": PEER,
                   "samples_per_s": _median(peer_train), "vs_d3rlpy": 1.0 if peer else "", "per_round": ""}]
    eval_rows = [{"side": train_rows[0]["side"], "backbone": PEER, "method": PEER_EVAL, "envs": 1,
                  "env_steps_per_s": _median(peer_eval), "vs_d3rlpy": 1.0 if peer else "", "per_round": ""}]
    for name, rounds in ours.items():
        c = _compare([r["train"] for r in rounds], peer_train)
        train_rows.append({"side": "ours", "backbone": name, "samples_per_s": c["median"], "vs_d3rlpy": c["vs_d3rlpy"],
                           "per_round": c["per_round"]})
        for method in (EMULATION, "ours, vector env, window", "ours, vector env, recurrent"):
            c = _compare([r[method] for r in rounds], peer_eval)
            eval_rows.append({"side": "ours", "backbone": name, "method": method,
                              "envs": 1 if method == EMULATION else args.episodes, "env_steps_per_s": c["median"],
                              "vs_d3rlpy": c["vs_d3rlpy"], "per_round": c["per_round"]})
    size = f"embed {args.embed}, {args.n_layers} layers, 1 head, K={CONTEXT_LEN}, batch {args.train_batch}"
    return [
        Table("peers_train", f"Training samples/s, {args.peers_train_steps} steps per round after "
                             f"{args.peers_warmup_steps} warm-up, median of {args.repeats} rounds ({size}); "
                             "vs_d3rlpy > 1: ours faster", train_rows),
        Table("peers_eval", f"Evaluation env steps/s, {args.episodes} episodes x {args.max_steps} steps "
                            f"(the emulation: {args.baseline_episodes}), median of {args.repeats} rounds; "
                            "vs_d3rlpy > 1: ours faster", eval_rows),
        Table("peers_targets", "Targets (reported, not asserted)", peer_targets(train_rows, eval_rows)),
        Table("peers_versions", "Versions and threads of each side", versions(peer, args)),
    ]


def peer_targets(train_rows: list[dict], eval_rows: list[dict]) -> list[dict]:
    train = {r["backbone"]: r["vs_d3rlpy"] for r in train_rows if r["side"] == "ours"}
    targets = [target_row(f"training samples/s, ours {name} / d3rlpy DT", train[name], f">= {need}x",
                          lambda x, need=need: x >= need, NO_PEER)
               for name, need in (("transformer", 2.0), ("mingru", 2.5)) if name in train]
    for row in eval_rows:
        for mode, need in (("recurrent", 15.0), ("window", 4.0)):
            if row["method"] == f"ours, vector env, {mode}":
                targets.append(target_row(f"evaluation env steps/s, ours {row['backbone']} {mode} / d3rlpy's loop",
                                          row["vs_d3rlpy"], f">= {need:g}x", lambda x, need=need: x >= need, NO_PEER))
    return targets


def versions(peer: list[dict], args: AgentBenchmarkArgs) -> list[dict]:
    import gymnasium

    rows = [{"side": "ours", "torch": torch.__version__, "gymnasium": gymnasium.__version__, "d3rlpy": "-",
             "python": sys.version.split()[0], "torch_threads": torch.get_num_threads(),
             "minari": importlib.metadata.version("minari")}]
    if peer:
        p = peer[-1]
        rows.append({"side": "peer", "torch": p["torch"], "gymnasium": p["gymnasium"], "d3rlpy": p["d3rlpy"],
                     "python": p.get("python", ""), "torch_threads": p.get("threads", ""), "minari": "- (not used)"})
    return rows


def run(args: AgentBenchmarkArgs, device: torch.device) -> list[Table]:
    venv = Path(args.peer_venv).expanduser()
    peer_python = find_peer_python(args.peer_python, venv, args.make_peer_env)
    if peer_python is None:
        print(how_to_make_peer_env(venv))
    if device.type != "cpu" and peer_python is not None:
        print("peers suite: the peer runs on the CPU; ours on", device)
    ours, peer = measure_rounds(args, device, peer_python)
    return peer_tables(ours, peer, args)


def plot(tables: dict[str, list[dict]], plt) -> dict:
    train, evaluation = tables.get("peers_train") or [], tables.get("peers_eval") or []
    if not train:
        return {}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, rows, label, value in ((axes[0], train, lambda r: f"{r['side']}: {r['backbone']}", "samples_per_s"),
                                   (axes[1], evaluation, lambda r: f"{r['backbone']}: {r['method']}", "env_steps_per_s")):
        rows = [r for r in rows if r[value] != ""]
        ax.barh([label(r) for r in rows], [r[value] for r in rows])
        ax.set(xlabel=value.replace("_", " "), xscale="log")
        ax.tick_params(axis="y", labelsize=7)
    return {"throughput": fig}
