"""The run page's artifacts: listed with size and digest, images shown inline, any file
downloadable; a large file is never read into the page (its address is shown instead)."""

from __future__ import annotations

import mimetypes
import posixpath
import re

import streamlit as st

from dashboard import _format, data
from dashboard._format import literal
from registry.entities import ArtifactRecord, RunRecord

__all__ = ["DOWNLOAD_MAX", "IMAGES_SHOWN", "IMAGE_MAX", "artifacts_section", "file_name"]

IMAGES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
IMAGE_MAX = 20_000_000  # bytes: larger images are listed, not shown
IMAGES_SHOWN = 6
DOWNLOAD_MAX = 50_000_000  # bytes: larger files are not passed through the page
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_name(name: str) -> str:
    """A safe name for a downloaded artifact: its last path part, letters, digits and
    ``._-`` only."""
    return _UNSAFE.sub("_", posixpath.basename(name)).strip("._") or "artifact"


def artifacts_section(run: RunRecord) -> None:
    found = sorted(run.artifacts, key=lambda a: a.name)
    st.subheader(f"Artifacts ({len(found)})")
    if not found:
        st.caption("No artifacts were logged.")
        return
    st.dataframe([{"name": a.name, "size": _format.size(a.size), "bytes": a.size,
                   "sha256": a.sha256, "stored": _format.when(a.created_time)} for a in found],
                 hide_index=True, column_config={"stored": st.column_config.DatetimeColumn(
                     format="YYYY-MM-DD HH:mm")})
    _images([a for a in found if _is_image(a)])
    _download(found)


def _is_image(artifact: ArtifactRecord) -> bool:
    return artifact.name.lower().endswith(IMAGES)


def _images(images: list[ArtifactRecord]) -> None:
    shown = [a for a in images if a.size <= IMAGE_MAX][:IMAGES_SHOWN]
    if not shown:
        return
    columns = st.columns(min(len(shown), 3))
    for i, artifact in enumerate(shown):
        with columns[i % len(columns)]:
            try:
                lossless = artifact.name.lower().endswith(".png")  # no JPEG blur on a plot
                st.image(data.artifact_bytes(artifact.sha256, IMAGE_MAX),
                         caption=literal(artifact.name),
                         output_format="PNG" if lossless else "auto")
            except Exception as exc:  # not an image after all, or its blob is gone
                st.caption(literal(f"{artifact.name} cannot be shown: {exc}"))
    if len(images) > len(shown):
        st.caption(f"{len(shown)} of {len(images)} images shown; pick one below to download it.")


def _download(found: list[ArtifactRecord]) -> None:
    picked = st.selectbox("Artifact", range(len(found)), key="artifact",
                          format_func=lambda i: f"{found[i].name} ({_format.size(found[i].size)})")
    artifact = found[picked]
    if artifact.size > DOWNLOAD_MAX:
        st.caption(f"{_format.size(artifact.size)}: too large to pass through the page; "
                   "it is stored at:")
        st.code(artifact.uri, language=None, wrap_lines=True)
        return
    mime = mimetypes.guess_type(artifact.name)[0] or "application/octet-stream"
    st.download_button(f"Download ({_format.size(artifact.size)})",
                       data=data.artifact_download(artifact.sha256),
                       file_name=file_name(artifact.name), mime=mime, on_click="ignore",
                       key="artifact_download", icon=":material/download:")
