"""The Cairn demo: a team's first weeks with Cairn, replayed on synthetic data in minutes.

``cairn demo`` (:mod:`zoo.demo.cli`) runs the repository's DVC pipeline (``dvc.yaml``:
seeded synthetic inspection images, fine-tunes with the zoo, a published in-house backbone
reused by name, model cards), adds a team's history (:mod:`zoo.demo.history`), prints what
was recorded and serves the dashboard. ``python -m zoo.demo`` holds the pipeline's steps.
Everything it makes goes under ``demo/``; nothing reaches the network.
"""

__all__: list[str] = []
