"""The Cairn demo: a team's first weeks with Cairn, replayed on synthetic data in minutes.

``cairn demo`` (:mod:`demo.cli`) runs the repository's DVC pipeline (``dvc.yaml``: seeded
synthetic inspection images, fine-tunes with the zoo, a published in-house backbone reused
by name, model cards), adds a team's history (:mod:`demo.history`), prints what was recorded
and serves the dashboard. ``python -P -m demo`` holds the pipeline's steps. Everything it
makes goes under ``demo/``, beside this code (``demo/.gitignore`` keeps it out of git);
nothing reaches the network.

The demo sits above every package: it uses registry, zoo and catalog through their public
names only, as a team's own code would, and the dashboard through ``cairn dashboard``.
"""

__all__: list[str] = []
