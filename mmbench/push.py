"""``mmbench push``: a built folder to a Hugging Face Hub dataset repository, gated by its terms.

The folder is checked first (``mmbench info``'s checks, which cover every file it uploads: the
parquet files, and the card, datasheet, Croissant file and plots by the digests the build
recorded, so a damaged or edited build is never published). A build whose raw inputs are not
the published LastFM-1K files (the synthetic sample) goes only to a repository whose name says
sample, ungated (no Last.fm data is in it). A version already on the Hub is never overwritten by
a build with another fingerprint, and each pushed version is tagged ``v<dataset version>`` so
that ``load_dataset(..., revision="v2.0.0")`` pins it. The LastFM-1K repository is gated (access on request, manually approved, with the card's prompt, which states
the LastFM-1K terms) before any file goes up. The upload is one commit per config and a last one
for the card and the other small files (which also removes the configs the build no longer has);
a config whose files are already on the Hub with the same SHA-256 is skipped, so a push that was
cut off resumes where it stopped. The large files go through the library's chunked LFS/Xet
transfer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mmbench import layout
from mmbench.digests import sha256_file
from mmbench.errors import MmbenchError
from mmbench.info import check_dataset
from mmbench.loading import built_from_lastfm1k

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


def _checked(folder: Path, repo: str, allow_sample: bool) -> tuple[list[Path], dict]:
    """The files to upload and the build report, once the folder passes every check."""
    problems = check_dataset(folder)
    if problems:
        raise MmbenchError(f"{folder} fails its checks ({problems[0]}); see `mmbench info {folder}`")
    report = json.loads((folder / "build_report.json").read_text(encoding="utf-8"))
    if not built_from_lastfm1k(report) and "sample" not in repo.split("/")[-1].lower() and not allow_sample:
        name, info = next((n, i) for n, i in report["inputs"].items() if not i.get("matches_published"))
        raise MmbenchError(
            f"{folder} was not built from the published LastFM-1K files ({name}: MD5 {info['md5']}, published "
            f"{info['published_md5']}): push it only to a repository whose name says sample, e.g. "
            f"{repo.split('/')[0]}/lastfm1k-mm-sample"
        )
    return published_files(folder), report


def dry_run(folder: Path, repo: str, allow_sample: bool = False) -> list[str]:
    """What a push would upload (file, size) and the card's metadata, without the network."""
    files, report = _checked(folder, repo, allow_sample)
    sizes = [(folder / f).stat().st_size for f in files]
    lines = [f"{size:>14,}  {f}" for f, size in zip(files, sizes, strict=True)]
    lines.append(f"{sum(sizes):>14,}  in {len(files)} files")
    card = (folder / "README.md").read_text(encoding="utf-8")
    front_matter = card.split("---", 2)[1].strip() if card.startswith("---") else ""
    gate = (
        "gated (access requests approved by hand)" if built_from_lastfm1k(report) else "ungated (synthetic)"
    )
    return [
        *lines,
        f"to {repo}, {gate}, tagged v{report['dataset_version']}",
        "",
        "card metadata (README.md):",
        front_matter,
    ]


def _remote_digests(api, repo: str) -> dict[str, str | None]:
    """SHA-256 of each LFS file of the repository (``None`` for a file kept in git)."""
    from huggingface_hub.hf_api import RepoFile

    return {
        item.path: (item.lfs.sha256 if item.lfs else None)
        for item in api.list_repo_tree(repo, repo_type="dataset", recursive=True)
        if isinstance(item, RepoFile)
    }


def _refuse_another_fingerprint(api, repo: str, report: dict) -> None:
    """Refuse to overwrite the Hub's copy of this dataset version when its fingerprint differs."""
    path = api.hf_hub_download(repo, "build_report.json", repo_type="dataset")
    remote = json.loads(Path(path).read_text(encoding="utf-8"))
    if (
        remote.get("dataset_version") == report["dataset_version"]
        and remote.get("fingerprint") != report["fingerprint"]
    ):
        raise MmbenchError(
            f"{repo} holds dataset version {report['dataset_version']} with fingerprint {remote.get('fingerprint')}; "
            f"this build has {report['fingerprint']}: a version is never overwritten with other data "
            "(a change to what evaluation depends on is a new version, CHANGELOG.md)"
        )


def push(folder: Path, repo: str, private: bool = False, allow_sample: bool = False) -> list[str]:
    """Upload ``folder`` to the dataset repository ``repo``, gate it (LastFM-1K data) and tag
    the version; lines saying what was done."""
    files, report = _checked(folder, repo, allow_sample)
    gated = built_from_lastfm1k(report)
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
        remote = _remote_digests(api, repo)
        if "build_report.json" in remote:
            _refuse_another_fingerprint(api, repo, report)
        if gated:  # before the first file goes up, so that no cut-off push leaves the data open
            api.update_repo_settings(repo, gated="manual", repo_type="dataset")
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
        tag = f"v{report['dataset_version']}"
        api.create_tag(repo, tag=tag, repo_type="dataset", exist_ok=True)
        lines.append(f"tagged {tag}: load_dataset({repo!r}, revision={tag!r}) reads this version")
    except MmbenchError:
        raise
    except Exception as exc:  # the Hub or the network: one line, the cause's own words
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise MmbenchError(f"cannot push to {repo}: {type(exc).__name__}: {first}") from None
    access = "gated: access requests are approved by hand" if gated else "ungated: synthetic data"
    lines.append(f"pushed to https://huggingface.co/datasets/{repo} ({access})")
    return lines
