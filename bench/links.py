"""Slow links between providers: the pipeline over the transport, each stage in its own netns.

    sudo python bench/links.py [--steps 3] [--stages 2] [--rate 100mbit] [--d-model 64]

Each stage runs in its own Linux network namespace, in its own process, with
no Ray; adjacent stages are joined by a veth pair, unshaped or shaped on both
ends with `tc qdisc ... tbf` (netem is not available on the build machines).
The stages talk exactly as providers do (ZeroMQ CURVE, signed payloads,
the same stage loop); the peer table is static instead of read from a chain.
The model is chosen so that its uncompressed boundary traffic takes longer
to cross the shaped link than its compute (the premise of the measurement):
on these CPUs a d_model 512 stage computes ~10x longer than its fp32
activations take at 100 Mbit/s, so the default is one layer a stage at
d_model 64, mlp_ratio 1, seq_len 256 (compute ~ d^2 T, traffic ~ d T). The
run prints the premise it measured: the in-process step time against the
time the uncompressed bytes of a step need at the shaped rate.

Prints one line per compression setting C and link L:

    link C L STEP_S BYTES_PER_STEP

and `transport_overhead R`: the step time over the transport on unshaped
veth links divided by the step time of the same stages in one process.
Every namespace it makes is deleted again, also on failure or Ctrl-C; it
uses only addresses inside the namespaces it made.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import get_args

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.lineage.documents import JobSpec  # noqa: E402
from agents.spec import (  # noqa: E402
    CompressionConfig,
    DeterminismConfig,
    ModelConfig,
    TrainingConfig,
)

SUBNET = "10.231"  # link i: SUBNET.i.1 (stage i) <-> SUBNET.i.2 (stage i+1); namespaces only
PORT = 7100


def methods() -> list[str]:
    """none, int8, and the best codec this build has (the subspace codec where it exists)."""
    have = get_args(CompressionConfig.model_fields["method"].annotation)
    best = "subspace" if "subspace" in have else "int8"
    return ["none", "int8"] + ([best] if best != "int8" else [])


def make_spec(dataset: str, method: str, stages: int, steps: int, d_model: int = 64) -> JobSpec:
    import torch

    return JobSpec(
        name="bench-links",
        model=ModelConfig(
            n_layer=stages, n_head=max(1, d_model // 64), d_model=d_model, seq_len=256, mlp_ratio=1
        ),
        num_stages=stages,
        dataset=dataset,
        compression=CompressionConfig(method=method),
        training=TrainingConfig(batch_size=4, micro_batches=4, steps_per_round=steps),
        determinism=DeterminismConfig(
            seed=3,
            num_threads=1,
            torch_version=torch.__version__,
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
        ),
    )


def sh(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")


class Namespaces:
    """Namespaces ns0..ns{n-1} in a chain of veth links; deleted on exit whatever happens."""

    def __init__(self, n: int) -> None:
        tag = f"tsrb{os.getpid()}"
        self.names = [f"{tag}s{i}" for i in range(n)]
        self.made: list[str] = []
        self.links = [(f"{tag}a{i}", f"{tag}b{i}") for i in range(n - 1)]

    def __enter__(self) -> Namespaces:
        try:
            for ns in self.names:
                sh("ip", "netns", "add", ns)
                self.made.append(ns)
                sh("ip", "-n", ns, "link", "set", "lo", "up")
            for i, (a, b) in enumerate(self.links):
                sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
                sh("ip", "link", "set", a, "netns", self.names[i])
                sh("ip", "link", "set", b, "netns", self.names[i + 1])
                sh("ip", "-n", self.names[i], "addr", "add", f"{SUBNET}.{i}.1/30", "dev", a)
                sh("ip", "-n", self.names[i + 1], "addr", "add", f"{SUBNET}.{i}.2/30", "dev", b)
                sh("ip", "-n", self.names[i], "link", "set", a, "up")
                sh("ip", "-n", self.names[i + 1], "link", "set", b, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def shape(self, rate: str | None) -> None:
        """tbf at `rate` on both ends of every link (None: remove shaping)."""
        for i, (a, b) in enumerate(self.links):
            for ns, dev in ((self.names[i], a), (self.names[i + 1], b)):
                if rate is None:
                    subprocess.run(
                        ["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"],
                        capture_output=True,
                    )
                else:
                    sh(
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        "tc",
                        "qdisc",
                        "replace",
                        "dev",
                        dev,
                        "root",
                        "tbf",
                        "rate",
                        rate,
                        "burst",
                        "32kbit",
                        "latency",
                        "400ms",
                    )

    def __exit__(self, *exc) -> None:
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.made.clear()


def peer_table(stages: int, keys: list, accounts: list) -> list[dict]:
    """What each stage knows of its neighbours: address, endpoint on the shared link, key."""
    tables = []
    for s in range(stages):
        t = {}
        if s > 0:  # upstream neighbour s-1 is SUBNET.(s-1).1
            t[s - 1] = [
                accounts[s - 1].address,
                f"tcp://{SUBNET}.{s - 1}.1:{PORT}",
                keys[s - 1].public.decode(),
            ]
        if s < stages - 1:
            t[s + 1] = [
                accounts[s + 1].address,
                f"tcp://{SUBNET}.{s}.2:{PORT}",
                keys[s + 1].public.decode(),
            ]
        tables.append(t)
    return tables


def run_transport(ns: Namespaces, spec: JobSpec, work: Path, keys, accounts) -> dict:
    """One round (warm-up step excluded) with each stage in its namespace; stage 0's figures."""
    from agents.transport.keys import save_key

    stages = spec.num_stages
    spec_file = work / "spec.json"
    spec_file.write_text(spec.model_dump_json())
    tables = peer_table(stages, keys, accounts)
    procs = []
    try:
        for s in range(stages):
            save_key(keys[s], work / f"key{s}.json")
            cfg = {
                "spec": str(spec_file),
                "store": str(work / "store"),
                "stage": s,
                "key": str(work / f"key{s}.json"),
                "peers": tables[s],
                "out": str(work / f"out{s}.json"),
            }
            (work / f"cfg{s}.json").write_text(json.dumps(cfg))
            env = {**os.environ, "TESSERA_BENCH_KEY": "0x" + bytes(accounts[s].key).hex()}
            procs.append(
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        ns.names[s],
                        sys.executable,
                        __file__,
                        "--worker",
                        str(work / f"cfg{s}.json"),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=open(work / f"err{s}.log", "w"),  # noqa: SIM115
                )
            )
        for s, p in enumerate(procs):
            if p.wait(timeout=900):
                raise RuntimeError(f"stage {s} failed: {(work / f'err{s}.log').read_text()[-800:]}")
        outs = [json.loads((work / f"out{s}.json").read_text()) for s in range(stages)]
        return {
            "step_s": outs[0]["step_s"],
            "bytes_per_step": sum(o["bytes_sent_per_step"] for o in outs),
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()


def worker(cfg_path: str) -> int:
    """One stage in its namespace: the provider's stage loop over a static peer table."""
    import torch

    from agents.roles.stage_host import StageHost
    from agents.roles.stage_loop import StageLink, StaticPeerView
    from agents.storage import open_store
    from agents.transport.keys import load_or_create_key, public_from_raw  # noqa: F401

    cfg = json.loads(Path(cfg_path).read_text())
    torch.set_num_threads(1)
    spec = JobSpec.model_validate_json(Path(cfg["spec"]).read_text())
    s = cfg["stage"]
    store = open_store(cfg["store"])
    view = StaticPeerView(
        chain_id=31337,
        job_market="0x" + "11" * 20,
        providers={int(k): v[0] for k, v in cfg["peers"].items()},
        records={v[0]: (v[1], v[2].encode()) for v in cfg["peers"].values()},
    )
    key = load_or_create_key(Path(cfg["key"]))
    link = StageLink(
        view, 1, s, spec.num_stages, key=key, bind=f"tcp://0.0.0.0:{PORT}", timeout=300
    )
    link.refresh()
    host = StageHost(spec.model_dump(mode="json"), s, store=store)
    host.prepare(1, 0, None)
    pk = os.environ["TESSERA_BENCH_KEY"]
    link.train_round(host, pk, 0, 1)  # warm-up (connections, allocator, first-step costs)
    host.prepare(1, 1, None)
    sent0 = link.ep.bytes_sent
    t0 = time.perf_counter()
    link.train_round(host, pk, 1, 1)
    seconds = time.perf_counter() - t0
    steps = spec.training.steps_per_round
    Path(cfg["out"]).write_text(
        json.dumps(
            {"step_s": seconds / steps, "bytes_sent_per_step": (link.ep.bytes_sent - sent0) / steps}
        )
    )
    time.sleep(1.0)  # let the neighbours read the last payloads before the sockets close
    link.close()
    return 0


def in_process(spec: JobSpec, store) -> float:
    """Seconds per step of the same stages in this process (the transport's baseline)."""
    import torch

    from agents.training.pipeline import InProcessPipeline
    from agents.training.worker import StageWorker

    torch.set_num_threads(1)
    workers = [StageWorker(spec, s, store=store) for s in range(spec.num_stages)]
    pipe = InProcessPipeline(workers)
    pipe.train_round(1, 0)
    t0 = time.perf_counter()
    pipe.train_round(1, 1)
    return (time.perf_counter() - t0) / spec.training.steps_per_round


def _bits_per_s(rate: str) -> float:
    """tc's rate words: 100mbit -> 1e8."""
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "bit": 1.0}
    for unit, scale in units.items():
        if rate.endswith(unit):
            return float(rate[: -len(unit)]) * scale
    raise SystemExit(f"error: rate {rate!r} is not like 100mbit")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--stages", type=int, default=2)
    ap.add_argument("--rate", default="100mbit")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)
    # SIGTERM unwinds like Ctrl-C, so the namespaces are deleted on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        print("error: bench/links.py needs root with `ip` and `tc`", file=sys.stderr)
        return 1
    from eth_account import Account

    from agents.lineage import build_dataset
    from agents.storage import open_store
    from agents.transport.keys import TransportKey

    work = Path(tempfile.mkdtemp(prefix="tessera-links-"))
    try:
        store = open_store(str(work / "store"))
        corpus = work / "corpus.txt"
        src = sorted((ROOT / "agents").rglob("*.py"))
        corpus.write_text("".join(p.read_text() for p in src))
        dataset, _ = build_dataset(store, corpus, name="src", source="repo", license="Apache-2.0")
        keys = [TransportKey.generate() for _ in range(args.stages)]
        accounts = [Account.create() for _ in range(args.stages)]
        results: dict[tuple[str, str], dict] = {}
        with Namespaces(args.stages) as ns:
            for method in methods():
                spec = make_spec(dataset, method, args.stages, args.steps, args.d_model)
                for link, rate in (("unshaped", None), (args.rate, args.rate)):
                    ns.shape(rate)
                    r = run_transport(ns, spec, work, keys, accounts)
                    results[(method, link)] = r
                    print(
                        f"link {method} {link} {r['step_s']:.3f} {int(r['bytes_per_step'])}",
                        flush=True,
                    )
        base = in_process(make_spec(dataset, "int8", args.stages, args.steps, args.d_model), store)
        raw = in_process(make_spec(dataset, "none", args.stages, args.steps, args.d_model), store)
        wire = results[("none", "unshaped")]["bytes_per_step"] * 8 / _bits_per_s(args.rate)
        print(
            f"# premise: uncompressed bytes of a step need {wire:.3f}s at {args.rate}, "
            f"in-process compute step {raw:.3f}s ({'holds' if wire > raw else 'does NOT hold'})"
        )
        over = results[("int8", "unshaped")]["step_s"] / base
        print(f"transport_overhead {over:.2f}")
        best = methods()[-1]
        ratio = results[(best, args.rate)]["step_s"] / results[(best, "unshaped")]["step_s"]
        print(
            f"# best codec {best}: {args.rate} / unshaped = {ratio:.2f} (target <= 1.2); "
            f"in-process step {base:.3f}s"
        )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
