"""Reference PyTorch/XLA training on Trainium: data parallel, ``mark_step`` placement, ``MpDeviceLoader``.

A small text encoder + MLP (W4's model family) trained data parallel over every
NeuronCore of every node the way the Neuron SDK's PyTorch/XLA guide does it: one
process per NeuronCore under ``torchrun``, the ``xla`` process group, and
``xm.optimizer_step``, which all-reduces the gradients across every rank
(``xm.reduce_gradients``) before the optimizer step. Not
``torch.nn.parallel.DistributedDataParallel``: the torch-neuronx release notes list
DDP/FSDP as unsupported. World size and rank come from ``torch_xla.runtime``
(``world_size()``, ``global_ordinal()``); ``xm.xrt_world_size``/``xm.get_ordinal``
were removed in torch-xla 2.7 (the ``current`` image has 2.9). Checkpointing goes through
:mod:`trainium_runtime.checkpoints` so a retried job resumes where it stopped.
The data here is synthetic with static shapes and a fixed batch size (what
``neuron_parallel_compile`` needs to trace every graph); replace
:func:`make_dataset` with your reader of ``TRAINING_DATA_URL``.

Modes: ``train`` (``--max-steps`` limits it, as the compile step does),
``evaluate`` (loss of the run's newest checkpoint, written to ``OUTPUT_URL``),
``embed`` (offline batch inference: embeddings to ``OUTPUT_URL``).
torch and torch_xla come with the Neuron training image; they are imported
inside the functions so the module's helpers import anywhere.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from .checkpoints import CheckpointStore, run_id_from_env, should_checkpoint
from .heartbeat import write_done, write_step

CLASSES = 16
STATE_FILE = "state.pt"


def build_model(torch: Any, args: argparse.Namespace) -> Any:
    """The model of ``args``' size (``--vocab --embed-dim --hidden --layers``; one size per run)."""
    class TextEncoderMlp(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(args.vocab, args.embed_dim)
            layer = torch.nn.TransformerEncoderLayer(
                args.embed_dim, nhead=8, dim_feedforward=args.hidden, batch_first=True
            )
            self.encoder = torch.nn.TransformerEncoder(layer, num_layers=args.layers)
            self.head = torch.nn.Sequential(
                torch.nn.Linear(args.embed_dim, args.hidden), torch.nn.GELU(), torch.nn.Linear(args.hidden, CLASSES)
            )

        def encode(self, tokens: Any) -> Any:
            return self.encoder(self.embed(tokens)).mean(dim=1)

        def forward(self, tokens: Any) -> Any:
            return self.head(self.encode(tokens))

    return TextEncoderMlp()


def make_dataset(torch: Any, args: argparse.Namespace, seed: int) -> Any:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, args.vocab, (args.samples, args.seq_len), generator=generator)
    labels = tokens[:, 0] % CLASSES
    return torch.utils.data.TensorDataset(tokens, labels)


def store_from_env() -> CheckpointStore:
    import boto3

    return CheckpointStore(boto3.client("s3"), os.environ["CHECKPOINT_URL"], run_id_from_env())


def train(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist
    import torch_xla.core.xla_model as xm
    import torch_xla.distributed.parallel_loader as pl
    import torch_xla.distributed.xla_backend  # noqa: F401  registers the "xla" process group backend
    import torch_xla.runtime as xr

    dist.init_process_group("xla")
    torch.manual_seed(0)  # every rank starts from the same weights (no DDP broadcast)
    device = xm.xla_device()
    model = build_model(torch, args).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    store = store_from_env()
    start_step = resume(torch, store, model, optimizer)
    dataset = make_dataset(torch, args, seed=0)
    sampler = torch.utils.data.distributed.DistributedSampler(
        dataset, num_replicas=xr.world_size(), rank=xr.global_ordinal(), shuffle=True, drop_last=True
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    device_loader = pl.MpDeviceLoader(loader, device)
    loss_fn = torch.nn.CrossEntropyLoss()
    every = int(os.environ.get("CHECKPOINT_EVERY_STEPS", "500"))
    # Global rank 0 reports each completed step; the entrypoint publishes it as the heartbeat.
    progress = Path(os.environ.get("PROGRESS_FILE", "/tmp/trainium-progress")) if xm.is_master_ordinal(local=False) else None
    step = start_step
    while step < args.max_steps:
        sampler.set_epoch(step)
        for tokens, labels in device_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(tokens), labels)
            loss.backward()
            # All-reduce the gradients over every rank, then step (the Neuron guide's
            # data parallelism); the MpDeviceLoader cuts the graph after each step.
            xm.optimizer_step(optimizer)
            step += 1
            if args.log_every and step % args.log_every == 0:
                loss_value = float(loss.detach().cpu())  # a sync point: only every log_every steps
                if progress is not None:
                    print(f"step {step} loss {loss_value:.4f}", flush=True)
            if progress is not None and step < args.max_steps:
                write_step(progress, step)
            elif progress is not None:  # the last step: the final checkpoint's upload may outlast the watchdog
                write_done(progress)
            if should_checkpoint(step, every) or step == args.max_steps:
                save(torch, xm, store, step, model, optimizer)
            if step >= args.max_steps:
                break


def resume(torch: Any, store: CheckpointStore, model: Any, optimizer: Any) -> int:
    checkpoint = store.latest()
    if checkpoint is None:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        paths = store.download(checkpoint, Path(tmp))
        state = torch.load(paths[STATE_FILE], map_location="cpu")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


def save(torch: Any, xm: Any, store: CheckpointStore, step: int, model: Any, optimizer: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / STATE_FILE
        # xm.save moves tensors to CPU and writes on the master ordinal only: a plain
        # state_dict, loadable on GPU or CPU as well (W4).
        xm.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, str(path))
        if xm.is_master_ordinal(local=False):
            store.save(step, {STATE_FILE: path})
        xm.rendezvous(f"checkpoint-{step}")  # no rank runs ahead of an unfinished checkpoint


def evaluate_or_embed(mode: str, args: argparse.Namespace) -> None:
    import boto3
    import torch
    import torch_xla.core.xla_model as xm

    device = xm.xla_device()
    model = build_model(torch, args).to(device)
    store = store_from_env()
    checkpoint = store.latest()
    if checkpoint is None:
        raise SystemExit(f"no complete checkpoint under {store.run_prefix}")
    with tempfile.TemporaryDirectory() as tmp:
        state = torch.load(store.download(checkpoint, Path(tmp))[STATE_FILE], map_location="cpu")
    model.load_state_dict(state["model"])
    model.eval()
    dataset = make_dataset(torch, args, seed=1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, drop_last=True)
    results: list[Any] = []
    with torch.no_grad():
        for tokens, labels in loader:
            tokens, labels = tokens.to(device), labels.to(device)
            if mode == "evaluate":
                results.append(torch.nn.functional.cross_entropy(model(tokens), labels))
            else:
                results.append(model.encode(tokens))
            xm.mark_step()
    output = os.environ["OUTPUT_URL"].removeprefix("s3://")
    bucket, _, prefix = output.partition("/")
    key = f"{prefix}{run_id_from_env()}/{mode}/"
    s3 = boto3.client("s3")
    if mode == "evaluate":
        loss = float(torch.stack(results).mean().cpu())
        body = json.dumps({"step": checkpoint.step, "loss": loss}).encode()
        s3.put_object(Bucket=bucket, Key=key + "metrics.json", Body=body)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "embeddings.pt"
            torch.save(torch.cat([r.cpu() for r in results]), path)
            s3.upload_file(str(path), bucket, key + "embeddings.pt")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="trainium_runtime.train_reference")
    parser.add_argument("mode", choices=("train", "evaluate", "embed"))
    parser.add_argument("--max-steps", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=16, help="per NeuronCore; fixed so shapes stay static")
    parser.add_argument("--samples", type=int, default=65536)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--embed-dim", type=int, default=512, help="a multiple of 8 (attention heads)")
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--log-every", type=int, default=100, help="print the loss every N steps (0: never)")
    args = parser.parse_args(argv)
    if args.mode == "train":
        train(args)
    else:
        evaluate_or_embed(args.mode, args)


if __name__ == "__main__":
    main()
