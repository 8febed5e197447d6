"""``mmbench push``: a built folder to a Hugging Face Hub dataset repository, gated by its terms.

The folder is checked first (``mmbench info``'s checks: a damaged build is never published). The
repository is gated (access on request, manually approved, with the card's prompt, which states
the LastFM-1K terms) before any file goes up. The upload is one commit per config and a last one
for the card and the other small files (which also removes the configs the build no longer has);
a config whose files are already on the Hub with the same SHA-256 is skipped, so a push that was
cut off resumes where it stopped. The large files go through the library's chunked LFS/Xet
transfer.
"""

from __future__ import annotations

import os
from pathlib import Path

from mmbench import layout
from mmbench.errors import MmbenchError
from mmbench.info import check_dataset, sha256_file

# What a build folder publishes; models, predictions and caches a user keeps beside it stay local.
PUBLISHED = (
    "README.md",
    "DATASHEET.md",
    "croissant.json",
    "build_report.json",
    "constraints.txt",
    "rejects.jsonl",
)


def published_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that a push uploads, relative to it, in upload order."""
    missing = [name for name in PUBLISHED if not (folder / name).is_file()]
    if missing:
        raise MmbenchError(f"{folder}: no {', '.join(missing)}; rebuild it with `mmbench build`")
    plots = sorted(p.relative_to(folder) for p in (folder / "plots").glob("*.png"))
    return (
        [p.relative_to(folder) for p in layout.parquet_files(folder)] + plots + [Path(n) for n in PUBLISHED]
    )


def _checked(folder: Path) -> list[Path]:
    problems = check_dataset(folder)
    if problems:
        raise MmbenchError(f"{folder} fails its checks ({problems[0]}); see `mmbench info {folder}`")
    return published_files(folder)


def dry_run(folder: Path) -> list[str]:
    """What a push would upload (file, size) and the card's metadata, without the network."""
    files = _checked(folder)
    sizes = [(folder / f).stat().st_size for f in files]
    lines = [f"{size:>14,}  {f}" for f, size in zip(files, sizes, strict=True)]
    lines.append(f"{sum(sizes):>14,}  in {len(files)} files")
    card = (folder / "README.md").read_text(encoding="utf-8")
    front_matter = card.split("---", 2)[1].strip() if card.startswith("---") else ""
    return [*lines, "", "card metadata (README.md):", front_matter]


def _remote_digests(api, repo: str) -> dict[str, str | None]:
    """SHA-256 of each LFS file of the repository (``None`` for a file kept in git)."""
    from huggingface_hub.hf_api import RepoFile

    return {
        item.path: (item.lfs.sha256 if item.lfs else None)
        for item in api.list_repo_tree(repo, repo_type="dataset", recursive=True)
        if isinstance(item, RepoFile)
    }


def push(folder: Path, repo: str, private: bool = False) -> list[str]:
    """Upload ``folder`` to the dataset repository ``repo`` and gate it; lines saying what was done."""
    files = _checked(folder)
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise MmbenchError("cannot push: HF_HUB_OFFLINE is set; unset it to reach the Hub")
    from huggingface_hub import HfApi, get_token

    token = get_token()
    if token is None:
        raise MmbenchError("cannot push: no Hugging Face token; set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token)
    lines = []
    try:
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        # Gated before the first file goes up, so that no cut-off push leaves the data open.
        api.update_repo_settings(repo, gated="manual", repo_type="dataset")
        remote = _remote_digests(api, repo)
        for config in layout.configs(folder):
            local = [f for f in files if f.parts[:2] == (layout.DATA, config)]
            stored = {p for p in remote if p.startswith(f"{layout.DATA}/{config}/")}
            if stored == {str(f) for f in local} and all(
                remote[str(f)] == sha256_file(folder / f) for f in local
            ):
                lines.append(f"{config}: already on the Hub, skipped")
                continue
            pattern = f"{layout.DATA}/{config}/*"
            api.upload_folder(
                repo_id=repo, repo_type="dataset", folder_path=folder, allow_patterns=pattern,
                delete_patterns=pattern, commit_message=f"{config}: the build's parquet files",
            )  # fmt: skip
            lines.append(f"{config}: uploaded {len(local)} files")
        local_configs = set(layout.configs(folder))
        gone = sorted({p.split("/")[1] for p in remote if p.startswith(f"{layout.DATA}/")} - local_configs)
        api.upload_folder(
            repo_id=repo, repo_type="dataset", folder_path=folder, allow_patterns=["plots/*.png", *PUBLISHED],
            delete_patterns=["plots/*", *(f"{layout.DATA}/{c}/*" for c in gone)],
            commit_message="The card, datasheet, Croissant metadata and build report",
        )  # fmt: skip
        lines += [f"{config}: not in this build, removed from the Hub" for config in gone]
    except Exception as exc:  # the Hub or the network: one line, the cause's own words
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise MmbenchError(f"cannot push to {repo}: {type(exc).__name__}: {first}") from None
    lines.append(
        f"pushed to https://huggingface.co/datasets/{repo} (gated: access requests are approved by hand)"
    )
    return lines
