"""Record three small PyTorch trainings into the workspace registry.

A stand-in for a team's training script until the full demo pipeline exists: a tiny
classifier on synthetic 2-D data, trained with three learning rates. Run it, then look at the
result with ``cairn runs list`` and ``cairn runs show <id>``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import registry


def _data(seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2048, 2, generator=gen)
    y = ((x[:, 0] * x[:, 1]) > 0).long()  # XOR-like: needs a hidden layer
    return x[:1536], y[:1536], x[1536:], y[1536:]


def train(lr: float, hidden: int = 32, epochs: int = 30) -> str:
    """Train once and record it; returns the run id."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    x_train, y_train, x_val, y_val = _data()
    model = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    params = {"optimizer": {"name": "adamw", "lr": lr}, "model": {"hidden": hidden},
              "epochs": epochs, "batch_size": 128}
    with registry.start_run(project="quickstart", name=f"mlp-lr{lr:g}", params=params,
                            tags={"task": "toy-xor"},
                            question="Which learning rate fits the XOR toy best?") as run:
        for epoch in range(epochs):
            for i in range(0, len(x_train), 128):
                loss = nn.functional.cross_entropy(model(x_train[i:i + 128]), y_train[i:i + 128])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                run.log_metric("train_loss", loss.item())
            with torch.no_grad():
                accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
            run.log_metric("val_acc", accuracy, step=epoch)
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / "model.pt"
            torch.save(model.state_dict(), weights)
            run.log_artifact(weights)
        run.set_conclusion(f"val_acc {accuracy:.3f} after {epochs} epochs")
    return run.id


def main() -> None:
    for lr in (1e-3, 1e-2, 1e-1):
        run_id = train(lr)
        record = registry.get_run(run_id)
        print(f"recorded {run_id[:8]} {record.name}: val_acc={record.metrics['val_acc'].last:.3f}")


if __name__ == "__main__":
    main()
