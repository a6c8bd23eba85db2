"""Reporting from the same metric events the run directory gets: optional TensorBoard / W&B
writers (--report-to; off by default, each only if its package is installed) and the loss-curve
PNG (loss.png) written when a run ends, by matplotlib if present, else a tiny numpy PNG writer."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from localtune import events
from localtune.errors import LocaltuneError
from localtune.runs import RunDir, layout

TARGETS = ("tensorboard", "wandb")
LOSS_PNG = layout.LOSS_PNG  # also the plot's name next to an export's model card


def _tensorboard(run_dir: Path):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise LocaltuneError("--report-to tensorboard needs tensorboardX (pip install tensorboardX) "
                                 "or torch with tensorboard") from None
    writer = SummaryWriter(str(RunDir(run_dir).tensorboard_dir))

    def log(step: int, values: dict) -> None:
        for k, v in values.items():
            writer.add_scalar(k, v, step)
        writer.flush()

    return log, writer.close


def _wandb(run_dir: Path):
    try:
        import wandb
    except ImportError:
        raise LocaltuneError("--report-to wandb needs wandb (pip install wandb)") from None
    run = wandb.init(project="localtune", name=run_dir.name, dir=str(run_dir))
    return (lambda step, values: run.log(values, step=step)), run.finish


def reporter(report_to: str | None, run_dir: Path) -> tuple[Callable[[dict], None], Callable[[], None]]:
    """(send, close): `send(event)` passes the numbers of train/val events to the chosen services
    (--report-to, comma-separated); `close()` flushes and closes them."""
    if not report_to:
        return events.ignore, lambda: None
    sinks = []
    for name in report_to.split(","):
        if name not in TARGETS:
            raise LocaltuneError(f"--report-to {name!r}: use one of {', '.join(TARGETS)}")
        sinks.append((_tensorboard if name == "tensorboard" else _wandb)(Path(run_dir)))

    def send(event: dict) -> None:
        ev = events.parse(event)
        if isinstance(ev, (events.Train, events.Val)):
            values = {k: v for k, v in ev.values().items() if k not in ("step", "time")}
            for log, _ in sinks:
                log(int(ev.step), values)

    def close() -> None:
        for _, done in sinks:
            done()

    return send, close


# --- loss.png ------------------------------------------------------------------------------------

def curves(events: list[dict]) -> dict[str, list[tuple[float, float]]]:
    out = {"train_loss": [], "val_loss": []}
    for e in events:
        for k in out:
            if isinstance(e.get(k), (int, float)):
                out[k].append((float(e.get("step", 0)), float(e[k])))
    return out


def write_loss_png(events: list[dict], path: str | Path) -> Path | None:
    """The loss curves (train blue, validation orange) as a PNG; None when there is nothing to draw."""
    data = curves(events)
    if not any(data.values()):
        return None
    path = Path(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _write_png(path, _raster(data))
        return path
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for k, pts in data.items():
        if pts:
            ax.plot(*zip(*pts), label=k, marker="o" if len(pts) < 20 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


COLORS = {"train_loss": (31, 119, 180), "val_loss": (255, 127, 14)}


def _raster(data: dict, w: int = 480, h: int = 280, pad: int = 20) -> np.ndarray:
    """Axes and polylines drawn on an RGB array (no text: the card's caption says what it is)."""
    img = np.full((h, w, 3), 255, np.uint8)
    img[h - pad, pad: w - pad] = img[pad: h - pad, pad] = (0, 0, 0)
    pts = [p for series in data.values() for p in series]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def to_px(x, y):
        return (pad + (x - x0) / (x1 - x0) * (w - 2 * pad - 1),
                h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad - 1))

    for k, series in data.items():
        px = [to_px(*p) for p in series]
        for (ax, ay), (bx, by) in zip(px, px[1:] or px):
            n = int(max(abs(bx - ax), abs(by - ay))) + 1
            for t in np.linspace(0, 1, n + 1):
                cx, cy = int(round(ax + t * (bx - ax))), int(round(ay + t * (by - ay)))
                img[max(cy - 1, 0): cy + 2, max(cx - 1, 0): cx + 2] = COLORS[k]
    return img


def _write_png(path: Path, img: np.ndarray) -> None:
    from localtune.fsutil import atomic_write_bytes

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))  # filter type 0 per row
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    atomic_write_bytes(path, png)


def finish_run(run_dir: str | Path, events: list[dict]) -> None:
    """End-of-run extras; a failure here must never fail a finished training run."""
    try:
        write_loss_png(events, RunDir(run_dir).loss_png)
    except (OSError, ValueError):
        pass
