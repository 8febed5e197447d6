"""Stage 9, publish: the datasheet and the responsible-AI answers of a build.

The answers to the Datasheets for Datasets questions (Gebru et al., "Datasheets for Datasets",
CACM 64(12), 2021) are written once here, with the figures of the build report, and used twice:
in the folder's ``DATASHEET.md`` and, as the Croissant RAI vocabulary's fields
(http://mlcommons.org/croissant/RAI/), in its ``croissant.json``.
"""

from __future__ import annotations

from mmbench.builders.ingest import LASTFM_PAGE
from mmbench.builders.kinds import KINDS
from mmbench.loading import built_from_lastfm1k
from mmbench.schema import CODE_URL, HUB_ID, MGPHOT_DIM

LICENCE = (
    "The LastFM-1K listening logs were collected by Òscar Celma from the Last.fm API and are "
    f"distributed for non-commercial use only, with attribution ({LASTFM_PAGE}). This processed "
    "benchmark is distributed under the same terms: non-commercial use, and any use must reference "
    "that page and Last.fm and cite O. Celma, Music Recommendation and Discovery in the Long Tail, "
    "Springer, 2010. The mmbench code that builds it is MIT-licensed."
)


def _selection_limitation(report: dict) -> str:
    """What the recipe's selection of users and tracks knows of the future."""
    if report["recipe"]["split"].get("select_before_test_cutoff"):
        return (
            "The thresholds of the recipe count only the plays before the test cutoff, so no user or "
            "track is present because of later plays."
        )
    return (
        "The thresholds of the recipe count plays of the whole period, so some users and tracks are "
        "present only because of later plays (build_report.json, later_plays_in_selection)."
    )


def _content_coverage(report: dict) -> str:
    content = report.get("content", {})
    if not content:
        return f"This build has no content configs (no {', '.join(k.name for k in KINDS)} or MGPHot)."
    n = report["statistics"]["tracks"]
    return " ".join(
        f"`{name}` ({info['model']}, {info['dim']} values): {info['coverage']['tracks']:,} of {n:,} tracks "
        f"({info['coverage']['tracks_share']:.1%}), {info['coverage']['plays_share']:.1%} of plays."
        for name, info in sorted(content.items())
    )


def _mgphot_protocol(report: dict) -> str:
    info = report.get("content", {}).get("mgphot")
    if info is None:
        return "This build has no MGPHot annotations (the `mgphot` config is built only when asked)."
    return (
        f"Each of the {MGPHOT_DIM} genes of the MGPHot schema (the card lists them, with their category "
        "and the meaning of 0 and 1) was rated 0-5 by a language model reading the track and artist "
        "names and, when a lyrics manifest was given, the first 600 characters of the lyrics; no "
        "person annotated anything. The stored value is the rating divided by 5 (for a local model, the "
        "expected rating under its probabilities of the digits 0-5). Annotator of this build: "
        f"`{info['model']}` (prompt version {info['prompt_version']}), {info['annotated']:,} tracks "
        f"annotated ({info.get('with_lyrics', 0):,} of them with lyrics), the most played tracks "
        "first. The annotations are a model's guesses from names and text, not from listening: "
        "`mmbench validate-mgphot` compares them with expert ratings where a user has some."
    )


def _profiles(report: dict) -> str:
    p = report["statistics"]["profiles"]
    n = report["statistics"]["users"]
    gender = p["gender"]
    age = p["age"]
    ages = (
        f"the middle half of the {age['known']:,} known ages is {age['q25']:.0f}-{age['q75']:.0f} (median {age['q50']:.0f})"
        if age["known"]
        else "no age is known"
    )
    countries = ", ".join(f"{c} {k:,}" for c, k in p["countries"].items())
    return (
        f"Of the {n:,} users, {gender['m']:,} declare themselves male, {gender['f']:,} female and "
        f"{gender['unknown']:,} say nothing; {ages}; the commonest countries are {countries} "
        f"({p['country_unknown']:,} users without a country)."
    )


def responsible_ai(report: dict) -> dict[str, str]:
    """The Croissant RAI fields of a build, by property name (without the ``rai:`` prefix)."""
    split = report["stages"]["split"]
    stats = report["statistics"]
    removed = report["stages"]["filter"]["removed"]
    filters = ", ".join(f"{name} ({count:,} plays)" for name, count in removed.items())
    return {
        "dataCollection": (
            "Listening events (user, time, artist, track) of about 1,000 Last.fm users, crawled by "
            "Òscar Celma through the Last.fm API ('scrobbles' sent by the users' music players), with "
            "each user's self-declared profile (gender, age, country, signup date). mmbench adds no "
            "listening data; it derives sessions, listening times and completion ratios from the "
            "events, and content vectors (nothing is downloaded) from "
            + "; ".join(kind.source for kind in KINDS)
            + "."
        ),
        "dataCollectionType": "Secondary data: logs of a music service's API, collected by a third party.",
        "dataCollectionTimeFrame": (
            f"The plays of this build run from {stats['first_play_utc']} to {stats['last_play_utc']}; "
            f"the validation period starts {split['validation_cutoff_utc']} and the test period "
            f"{split['test_cutoff_utc']}."
        ),
        "dataCollectionRawData": (
            f"{LASTFM_PAGE}: userid-timestamp-artid-artname-traid-traname.tsv and userid-profile.tsv; "
            "their MD5 digests, as read by this build, are in build_report.json (inputs)."
        ),
        "dataPreprocessingProtocol": (
            f"mmbench build, recipe `{report['recipe']['name']}` (the full recipe is in the card and in "
            f"build_report.json): {report['stages']['ingest']['rows_in']:,} raw lines read, "
            f"{sum(report['stages']['ingest']['removed'].values()):,} malformed lines rejected and listed "
            "in rejects.jsonl; tracks identified by MusicBrainz id or normalised names; sessions cut "
            f"at gaps of {report['recipe']['sessionize']['gap_seconds']:,} s; listening time of a play = "
            "time to the next play of the session, completion ratio = listening time / track duration; "
            f"filters: {filters}; a global temporal split by session start time; evaluation "
            "instances of the next-track and paper-sampled tasks drawn with a fixed seed."
        ),
        "dataAnnotationProtocol": _mgphot_protocol(report),
        "dataAnnotationPlatform": "None: annotations are made by a language model run by `mmbench build`.",
        "machineAnnotationTools": (
            report["content"]["mgphot"]["model"]
            if "mgphot" in report.get("content", {})
            else "None in this build."
        ),
        "personalSensitiveInformation": (
            "User ids are pseudonymous (user_000001 ...), but each user's profile holds gender, age, "
            "country and signup date, and the listening history itself (what was played, at which "
            "hours, over months or years) can reveal routines, tastes and, with other data, identity. Do "
            "not try to re-identify users; do not join the data with other sources about them."
        ),
        "dataBiases": (
            "The users are Last.fm listeners of 2005-2009 who had a scrobbler send their plays, "
            "with the catalogue and tastes of that period; they were not sampled to represent any "
            f"population, and the profile fields are self-declared and often empty. {_profiles(report)} Track "
            f"popularity is long-tailed ({stats['tracks_cold']:,} of {stats['tracks']:,} catalogue "
            "tracks have no training play). Content coverage is uneven: " + _content_coverage(report)
        ),
        "dataLimitations": (
            "Listening times are inferred from the time to the next play, so the last play of a "
            "session has none, and completion ratios need a known track duration. "
            + _selection_limitation(report)
            + " The MGPHot values "
            "are a model's guesses. A result on these users says little about today's streaming "
            "services."
        ),
        "dataUseCases": (
            "Intended: research on session-based and sequential music recommendation, with the "
            "official next-track task (full-catalogue ranking, global temporal split) and the "
            "paper-sampled task kept for comparison with published numbers; studies of content and "
            "completion signals. Not intended: commercial use (the licence forbids it), profiling or "
            "identifying users, or any decision about people."
        ),
        "dataSocialImpact": (
            "Better recommenders can widen what people hear or narrow it; the benchmark reports "
            "beyond-accuracy measures (coverage, popularity, novelty) so that results show which."
        ),
        "dataCollectionMissingData": _missing_data(report),
        "dataImputationProtocol": (
            "None: a value the logs do not give stays null (a play's listening seconds and completion "
            "ratio, a track's duration and MusicBrainz ids, a profile field); a track without a content "
            "vector has no row in that content config, and each instance says whether its target has one."
        ),
        "dataManipulationProtocol": (
            "Plays are cut into sessions at gaps over the recipe's threshold, the recipe's filters run in "
            "their stated order (within-session repeats dropped, short sessions dropped, long ones cut, "
            "rare users and tracks dropped), and the spellings of a song are merged into one track id; "
            "no timestamp, name or value of a kept play is altered (build_report.json counts every "
            "removal per stage)."
        ),
        "annotationsPerItem": (
            "One MGPHot annotation per annotated track: one language model's expected rating of each of "
            "the 58 genes from one prompt (no second annotator, no aggregation)."
        ),
        "dataAnnotationAnalysis": (
            "None beyond the model's own probabilities: the ratings are not compared with human ones, "
            "and no agreement between annotators exists to report. Treat the genes as one model's "
            "reading of artist and title (and lyrics where given), not as musicological ground truth."
        ),
        "dataReleaseMaintenancePlan": (
            f"Dataset version {report['dataset_version']}; every change that alters the fingerprint "
            "(what evaluation depends on) gets a new version and an entry in the project's "
            f"CHANGELOG.md ({CODE_URL}/blob/main/CHANGELOG.md), and results of different fingerprints "
            f"are never ranked together. Issues and corrections go to {CODE_URL}/issues."
        ),
    }


def _missing_data(report: dict) -> str:
    """What this build lacks, in its own figures."""
    stats, completion = report["statistics"], report["stages"]["completion"]
    profiles = stats["profiles"]
    content = "; ".join(
        f"{name} covers {info['coverage']['tracks']:,} of {stats['tracks']:,} tracks"
        for name, info in sorted(report.get("content", {}).items())
    )
    return (
        f"Of the {completion['rows_in']:,} plays before the filters, "
        f"{completion['rows_in'] - completion['plays_with_completion_ratio']:,} have no "
        f"completion ratio (the session's last play, or a track without a known duration); "
        f"{stats['tracks'] - stats['tracks_with_duration']:,} of {stats['tracks']:,} catalogue tracks have no duration; "
        f"of {stats['users']:,} users, {profiles['gender'].get('unknown', 0):,} give no gender, "
        f"{stats['users'] - profiles['age']['known']:,} no age and {profiles['country_unknown']:,} no country"
        + (f"; {content}" if content else "")
        + "."
    )


def datasheet_text(report: dict) -> str:
    """``DATASHEET.md``: the datasheet questions answered for this build, with its figures."""
    rai = responsible_ai(report)
    stats = report["statistics"]
    published = built_from_lastfm1k(report)
    origin = (
        ""
        if published
        else "\n**These raw files are not the published LastFM-1K files** (their MD5s differ, see\n"
        "`build_report.json`; the embedded sample is synthetic): the figures describe them, the\n"
        "answers describe LastFM-1K.\n"
    )
    split = report["stages"]["split"]
    inst = stats["instances"]
    title = "LastFM-1K-MM" if published else "LastFM-1K-MM synthetic sample, not LastFM-1K data"
    return f"""# Datasheet: {title} (recipe `{report["recipe"]["name"]}`, dataset version {report["dataset_version"]})

The questions of *Datasheets for Datasets* (Gebru et al., CACM 64(12), 2021), answered for this
build. The figures come from its `build_report.json`; the same answers are in `croissant.json`'s
responsible-AI fields. Fingerprint: `{report["fingerprint"]}`.
{origin}
## Motivation

- **Why was the dataset created?** To compare session-based music recommenders under one protocol
  free of leakage (a global temporal split, full-catalogue ranking), with the content signals
  (audio, lyrics, musicological metadata) and listening completion that music recommenders use.
- **Who created it?** The mmbench contributors, from the LastFM-1K logs collected by Òscar Celma.
- **Who funded it?** No grant or company funded it: it is the contributors' own open-source work
  (code: {CODE_URL}).

## Composition

- **What do the instances represent?** Listening sessions of Last.fm users (`sessions`: one row
  per session, its tracks, times, listening seconds and completion ratios), the evaluation
  instances (`instances`), the catalogue (`tracks`), the users' profiles (`users`), and one row per
  track of each content config.
- **How many?** {stats["sessions"]:,} sessions ({split["sessions"]["train"]:,} train,
  {split["sessions"]["validation"]:,} validation, {split["sessions"]["test"]:,} test), {stats["plays"]:,} plays,
  {stats["users"]:,} users, {stats["tracks"]:,} tracks; next-track instances:
  {inst["next-track"]["validation"]:,} validation, {inst["next-track"]["test"]:,} test; paper-sampled:
  {inst["paper-sampled"]["validation"]:,} validation, {inst["paper-sampled"]["test"]:,} test.
- **Is it a sample?** A filtered subset of LastFM-1K: of {report["stages"]["ingest"]["rows_in"]:,} raw lines,
  {stats["plays"]:,} plays are kept (the filters are under Preprocessing, what each removed in
  `build_report.json`).
- **Content.** {_content_coverage(report)}
- **Missing data.** Listening seconds and completion ratios are null where they cannot be
  inferred; a track without audio, lyrics or MGPHot has no row in that config, and each instance
  says whether its target has each such content (`target_has_<config>`); the text config
  covers every track.
- **Confidential or sensitive data.** {rai["personalSensitiveInformation"]}

## Collection process

- **How was the data acquired?** {rai["dataCollection"]}
- **Over what time frame?** {rai["dataCollectionTimeFrame"]}
- **Raw data.** {rai["dataCollectionRawData"]}
- **Were the people concerned notified, did they consent?** The users published their listening
  to Last.fm, whose API made it public at the time; they were not asked about this benchmark.

## Preprocessing, cleaning, labelling

- **Preprocessing.** {rai["dataPreprocessingProtocol"]}
- **Labelling.** {rai["dataAnnotationProtocol"]}
- **Is the software available?** Yes: `mmbench build` rebuilds this folder byte for byte from
  the raw files, the recipe and the package versions of `constraints.txt`.

## Uses

- **Intended and unsuitable uses.** {rai["dataUseCases"]}
- **Biases.** {rai["dataBiases"]}
- **Limitations.** {rai["dataLimitations"]}
- **Impact.** {rai["dataSocialImpact"]}

## Distribution

- **How, and under which licence?** As parquet files with a dataset card and `croissant.json`,
  on the Hugging Face Hub behind a gate that states the terms. {LICENCE}
- **What rights lie behind the audio and lyrics vectors?** None of the audio or lyrics is
  distributed: only vectors computed from them by the builder, from files the builder supplied
  (manifests naming a local file per track) under their own rights, which the builder must hold
  for that use. A vector cannot be turned back into the recording or the text, but it is derived
  from them: whoever publishes a build states where its audio and lyrics came from. The sample's
  audio and lyrics are synthetic, made by the build itself.

## Maintenance

- {rai["dataReleaseMaintenancePlan"]}
- **Who maintains it, and how to reach them?** The mmbench maintainers, through {CODE_URL}/issues
  (questions, corrections, requests to remove data).
- **Are older versions kept?** Yes: each pushed version is tagged on the Hub (`v<version>`, e.g.
  `load_dataset("{HUB_ID}", revision="v{report["dataset_version"]}")`) and never overwritten with
  other data; the CHANGELOG says what each changed and which results it invalidates.
- **How can others contribute?** With issues and pull requests to {CODE_URL}: a new recipe, a
  content encoder (a new config), a fix; results go to the leaderboard as predictions files, which
  are recomputed, never taken on trust ({CODE_URL}/tree/main/leaderboard).
"""
