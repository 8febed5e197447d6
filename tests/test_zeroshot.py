"""The zero-shot LLM rankers: prompts from the tracks config, each scorer against an independent
computation with the packaged model, rankings through the CLI on the sample, bad settings, and
the http backend against a real `transformers serve` server and on answers recorded from a real
llama.cpp server."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import build_fixture, run_cli
from mmbench.baselines import zeroshot
from mmbench.baselines.data import Benchmark, instance_inputs
from mmbench.baselines.runner import model_config
from mmbench.errors import MmbenchError
from mmbench.schema import mgphot_gene_list


@pytest.fixture(scope="module")
def local_model():
    return zeroshot.LocalModel("", "cpu")


@pytest.fixture(scope="module")
def pop_folder(sample_build, tmp_path_factory):
    out = tmp_path_factory.mktemp("zs") / "pop"
    assert (
        run_cli("baseline", "train", "pop", "--dataset", str(sample_build), "--out", str(out)).returncode == 0
    )
    return out


def _config(**settings) -> zeroshot.Settings:
    return model_config("zeroshot").replace(device="cpu", **settings)


def test_the_prompt_is_names_session_completion_and_genes_never_ids(sample_build):
    data = Benchmark(sample_build)
    row = next(r for r in instance_inputs(data, "next-track", "test") if len(r["prefix"]) >= 3)
    texts = zeroshot.TrackTexts(data, mgphot=True)
    shown = len(row["prefix"]) + 2
    prompt = zeroshot.history_prompt(row, texts, _config(history=shown, completion=True))
    lines = [line for line in prompt.splitlines() if line.startswith("- ")]
    assert len(lines) == shown  # the whole session, then the two plays before it
    session = prompt.split("This session so far:\n")[1].splitlines()
    tracks = data.tracks.to_pandas().set_index("track_id")
    for line, track, ratio in zip(session, row["prefix"], row["prefix_completion"], strict=True):
        assert line.startswith(f"- {tracks.loc[track, 'artist_name']} - {tracks.loc[track, 'track_name']}")
        words = "skipped early" if ratio < 0.3 else "played to the end" if ratio >= 0.9 else "played in part"
        assert line.endswith(f"({words})")
    assert not any(t in prompt for t in data.track_ids), "a track id leaked into the prompt"
    genes = data.frame("mgphot", "catalog").row(0, named=True)
    top = sorted(range(len(genes["genes"])), key=lambda i: (-genes["genes"][i], i))[:3]
    assert texts.line(genes["track_id"]).endswith(
        "[" + "; ".join(str(mgphot_gene_list()[i]["1"]) for i in top) + "]"
    )


def _full_pass_logprobs(local_model, prompt: str, candidate: str) -> list[float]:
    """The candidate's token log-probabilities from one plain forward pass over prompt + candidate."""
    ids = local_model.encode(prompt) + local_model.encode(candidate)
    with torch.inference_mode():
        logp = torch.log_softmax(local_model.model(torch.tensor([ids])).logits[0].float(), -1)
    start = len(local_model.encode(prompt))
    return [float(logp[j - 1, ids[j]]) for j in range(start, len(ids))]


@pytest.mark.llm
def test_likelihood_on_the_cached_prompt_equals_full_forward_passes(local_model):
    prompt = "Earlier plays:\n- Modal Dal - Rain Ka\nNext track:\n"
    candidates = ["Crown Teal - Hollow Sky\n", "A - B\n", "The Long Name Band - A Much Longer Title Here\n"]
    batched = local_model.continuation_logprobs(prompt, candidates, batch_size=2)
    for candidate, (total, count) in zip(candidates, batched, strict=True):
        expected = _full_pass_logprobs(local_model, prompt, candidate)
        assert count == len(expected) and total == pytest.approx(sum(expected), abs=1e-4)


@pytest.mark.llm
def test_likelihood_settings_sum_mean_newline_and_pmi(local_model):
    """Each setting of the likelihood against plain forward passes: per token or summed, with or
    without the newline, and PMI (minus the candidate's log-likelihood with no history)."""
    prompt, lines = "This session so far:\n- A - B\n", ["Crown Teal - Hollow Sky", "C - D"]
    for norm, newline, calibrate in [("mean", True, False), ("sum", False, False), ("sum", True, True)]:
        config = _config(length_norm=norm, newline=newline, calibrate=calibrate)
        got = zeroshot.ZeroShotScorer(local_model, config).likelihood(prompt, lines)
        for line, value in zip(lines, got, strict=True):
            text = line + "\n" * newline
            mine = _full_pass_logprobs(local_model, prompt + "Next track:\n", text)
            expected = np.mean(mine) if norm == "mean" else sum(mine)
            if calibrate:
                expected -= sum(_full_pass_logprobs(local_model, zeroshot.NO_HISTORY + "Next track:\n", text))
            assert value == pytest.approx(expected, abs=1e-4)


def _letter_logprobs(local_model, prompt: str, n: int) -> np.ndarray:
    with torch.inference_mode():
        logits = local_model.model(torch.tensor([local_model.encode(prompt)])).logits[0, -1]
    logp = torch.log_softmax(logits.float(), -1)
    return np.asarray([float(logp[local_model.encode(f" {c}")[0]]) for c in zeroshot.LETTERS[:n]])


@pytest.mark.llm
def test_the_verbalizer_reads_the_letters_next_token_logprobs(local_model):
    history, lines = "This session so far:\n- A - B\n", ["C - D", "E - F", "G - H"]
    scores = zeroshot.ZeroShotScorer(local_model, _config(calibrate=False)).verbalizer(history, lines)
    expected = _letter_logprobs(local_model, zeroshot.verbalizer_prompt(history, lines), 3)
    assert scores == pytest.approx(expected, abs=1e-5)
    # Calibrated: minus the letters' log-probabilities when every text is "N/A".
    calibrated = zeroshot.ZeroShotScorer(local_model, _config(calibrate=True)).verbalizer(history, lines)
    free = zeroshot.verbalizer_prompt(zeroshot.CONTENT_FREE, ["N/A"] * 3)
    assert calibrated == pytest.approx(expected - _letter_logprobs(local_model, free, 3), abs=1e-5)
    lines = ["C - D", "E - F", "G - H", "I - J"]
    tau = zeroshot.position_bias(local_model, "- A - B\n", lines, _config(scorer="verbalizer"))
    assert -1.0 <= tau < 1.0  # the letters' order moves the scores
    # The likelihood scores each candidate on its own: the order cannot matter.
    assert zeroshot.position_bias(local_model, "- A - B\n", lines, _config(scorer="likelihood")) == 1.0


def test_a_written_ranking_is_parsed_in_order_once_each():
    five = ["a - 1", "b - 2", "c - 3", "d - 4", "e - 5"]
    # The asked form: bracketed identifiers, in order, each once; ones out of range ignored.
    assert zeroshot.parse_ranking("[3] > [1] > [3] > [7] > [2]", five) == ([2, 0, 1], 0)
    assert zeroshot.parse_ranking("3, 1, 3, 7, 2, 0", five) == ([2, 0, 1], 0)
    assert zeroshot.parse_ranking("Ranking: 4 > 5\n1) 3\n2) 1", five) == ([3, 4, 2, 0], 0)
    # Numbers in prose, in a made-up title or in a name are not candidate numbers.
    assert zeroshot.parse_ranking("Here are the 5 candidates ranked:\n2. U2 - One", five) == ([], 1)
    maroon = ["Maroon 5 - Sugar", "x - y", "q - r", "s - t", "u - v"]
    assert zeroshot.parse_ranking("1. Maroon 5", maroon) == ([], 0)
    assert zeroshot.parse_ranking("1. Maroon 5", five) == ([], 0)
    # A numbered list of the tracks' texts: the texts count, not the list's numbering; a line
    # naming no candidate (a track the model made up) names none and is counted.
    answer = "1. C - D\n2. a  -  b\n3. Made - Up\n4. E - F\n5."
    assert zeroshot.parse_ranking(answer, ["A - B", "C - D", "E - F"]) == ([1, 0, 2], 1)
    # Typography and word order models use: en dashes, curly quotes, "title by artist".
    lines = ["Maroon 5 - Sugar", '"C" - D\'s', "E - F"]
    answer = "1. \u201cC\u201d \u2013 D\u2019s\n2. Sugar by Maroon 5\n3. e \u2014 f"
    assert zeroshot.parse_ranking(answer, lines) == ([1, 0, 2], 0)
    # Whole words only; a text inside a longer candidate's text is not that candidate.
    lines = ["Ber - Cold", "Ber - Cold Torro", "X - Y", "Beck - Loser"]
    assert zeroshot.parse_ranking("1. Ber - Cold Torro\n2. Xbeck - Losers", lines) == ([1], 1)
    assert zeroshot.parse_ranking("Ber - Cold Torro, X - Y, Ber - Cold", lines) == ([1, 2, 0], 0)
    # Two candidates with the same text are named in turn; the MGPHot genes need not be written.
    lines = ["A - B [loud]", "C - D [calm]", "A - B [sad]"]
    assert zeroshot.parse_ranking("1. A - B\n2. c - d\n3. A - B", lines) == ([0, 1, 2], 0)


class RecordingModel(zeroshot.LocalModel):
    """The packaged model, keeping every verbalizer prompt it is given."""

    def __init__(self):
        super().__init__("", "cpu")
        self.prompts: list[str] = []

    def next_token_logprobs(self, prompt: str, tokens: list[str]) -> list[float]:
        self.prompts.append(prompt)
        return super().next_token_logprobs(prompt, tokens)


def _shown(prompt: str) -> list[str]:
    return re.findall(r"^[A-T]\. (.*)$", prompt.split("Candidates:\n")[1], flags=re.M)


@pytest.mark.llm
def test_every_pass_shows_a_seeded_permutation_and_windows_never_mix():
    model = RecordingModel()
    lines = [f"Artist {i} - Title {i}" for i in range(25)]
    tiebreak = np.arange(25)
    # Shuffled: each pass's first window shows the candidates of a seeded permutation, not the given order.
    config = _config(scorer="verbalizer", passes=2, window=10, step=5, calibrate=False)
    best = zeroshot.ZeroShotScorer(model, config).rank("- A - B\n", lines, np.random.default_rng(3), tiebreak)
    assert sorted(best) == list(range(25))
    rng = np.random.default_rng(3)
    orders = [rng.permutation(25), rng.permutation(25)]
    # 25 candidates, window 10, step 5: windows at 15, 10, 5 and 0 of the current order per pass.
    assert len(model.prompts) == 8 and all(len(_shown(p)) == 10 for p in model.prompts)
    assert _shown(model.prompts[0]) == [lines[i] for i in orders[0][15:]]
    assert _shown(model.prompts[4]) == [lines[i] for i in orders[1][15:]]
    # Given order (the ablation): one pass, the first window is the given order's last 10.
    model.prompts.clear()
    zeroshot.ZeroShotScorer(
        model, _config(scorer="verbalizer", order="given", window=10, step=5, calibrate=False)
    ).rank("- A - B\n", lines, np.random.default_rng(3), tiebreak)
    assert len(model.prompts) == 4 and _shown(model.prompts[0]) == lines[15:]


@pytest.mark.llm
def test_ties_are_broken_by_the_stated_rule_never_by_the_order_given(local_model):
    # Two candidates with the same text get the same likelihood: the tiebreak decides, whichever comes first.
    lines = ["Same - Song", "Other - Song", "Same - Song"]
    for tiebreak in ([2, 1, 0], [0, 1, 2]):
        best = zeroshot.ZeroShotScorer(local_model, _config()).rank(
            "- A - B\n", lines, np.random.default_rng(0), np.asarray(tiebreak)
        )
        same = [i for i in best if lines[i] == "Same - Song"]
        assert same == sorted([0, 2], key=lambda i: tiebreak[i])


@pytest.mark.llm
def test_a_base_model_without_a_chat_template_gets_a_plain_prompt():
    model = zeroshot.LocalModel("", "cpu")
    model.tokenizer.chat_template = None
    answer = model.generate([{"role": "user", "content": "List two colours:"}], 8)
    assert isinstance(answer, str) and answer


@pytest.mark.llm
def test_next_track_reranks_the_retrievers_shortlist(sample_build, pop_folder, tmp_path):
    folder = tmp_path / "zs"
    sets = ["--set", f"retriever={pop_folder}", "--set", "instances=3", "--set", "shortlist=10"]
    assert (
        run_cli(
            "baseline", "train", "zeroshot", "--dataset", str(sample_build), "--out", str(folder), *sets
        ).returncode
        == 0
    )
    result = run_cli("baseline", "predict", str(folder), "--out", str(tmp_path / "zs.jsonl"), "--quiet")
    assert result.returncode == 0, result.stderr
    mine = [json.loads(x) for x in (tmp_path / "zs.jsonl").read_text().splitlines()]
    kept = next(folder.glob("retriever-next-track-test-*.jsonl"))
    pop = {r["instance_id"]: r["predictions"] for r in map(json.loads, kept.read_text().splitlines())}
    changed = 0
    for row in mine:
        ranking, base = row["predictions"], pop[row["instance_id"]]
        assert len(ranking) == len(set(ranking)) == 100
        assert sorted(ranking[:10]) == sorted(base[:10]) and ranking[10:] == base[10:100]
        changed += ranking != base
    assert 1 <= changed <= 3
    # The instances reranked are listed, so that a report can be made over them alone.
    record = json.loads((folder / "zeroshot-next-track-test.json").read_text())
    reranked = set(record["reranked"])
    assert len(reranked) == 3 and all(
        row["predictions"] == pop[row["instance_id"]][:100]
        for row in mine
        if row["instance_id"] not in reranked
    )
    assert run_cli("evaluate", str(tmp_path / "zs.jsonl"), "--dataset", str(sample_build)).returncode == 0


@pytest.mark.llm
def test_paper_sampled_ranks_the_instances_own_candidates(sample_build, tmp_path):
    folder = tmp_path / "zs"
    sets = ["--set", "scorer=verbalizer", "--set", "instances=1"]
    assert (
        run_cli(
            "baseline", "train", "zeroshot", "--dataset", str(sample_build), "--out", str(folder), *sets
        ).returncode
        == 0
    )
    out = tmp_path / "ps.jsonl"
    assert (
        run_cli(
            "baseline", "predict", str(folder), "--task", "paper-sampled", "--out", str(out), "--quiet"
        ).returncode
        == 0
    )
    rows = {r["instance_id"]: r for r in instance_inputs(Benchmark(sample_build), "paper-sampled", "test")}
    for line in out.read_text().splitlines():
        row = json.loads(line)
        assert len(set(row["predictions"])) == 100 and set(row["predictions"]) <= set(
            rows[row["instance_id"]]["candidates"]
        )


@pytest.mark.llm
def test_bad_settings_are_one_line_errors(sample_build, fixture_raw, tmp_path):
    other = tmp_path / "other"
    assert build_fixture(fixture_raw, other).returncode == 0
    assert (
        run_cli(
            "baseline", "train", "pop", "--dataset", str(other), "--out", str(tmp_path / "pop-other")
        ).returncode
        == 0
    )
    cases = [
        (
            sample_build,
            ["scorer=pairwise"],
            "scorer: Input should be 'likelihood', 'verbalizer' or 'listwise', got 'pairwise'",
        ),
        (sample_build, ["batch_size=0"], "batch_size: Input should be greater than or equal to 1, got 0"),
        (sample_build, ["history=0"], "history: Input should be greater than or equal to 1, got 0"),
        (sample_build, [f"retriever={tmp_path / 'nowhere'}"], "no such folder or predictions file"),
        (sample_build, [f"retriever={tmp_path / 'pop-other'}"], "trained on a dataset with other track ids"),
        (
            sample_build,
            ["backend=http", "url=http://127.0.0.1:9/v1", "model=m"],
            "cannot reach the model server",
        ),
        (other, ["mgphot=true"], "has no mgphot config"),
    ]
    for dataset, settings, message in cases:
        sets = [x for s in settings for x in ("--set", s)]
        result = run_cli(
            "baseline", "train", "zeroshot", "--dataset", str(dataset), "--out", str(tmp_path / "zs"), *sets
        )
        assert result.returncode == 2 and message in result.stderr, (settings, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_listwise_over_http_is_the_local_greedy_answer(llm_server, sample_build, tmp_path):
    data = Benchmark(sample_build)
    row = instance_inputs(data, "next-track", "test")[0]
    texts = zeroshot.TrackTexts(data, mgphot=False)
    prompt = zeroshot.history_prompt(row, texts, _config(history=5))
    lines = [texts.line(t) for t in data.track_ids[:5]]
    config = _config(max_new_tokens=24)
    local = zeroshot.LocalModel(llm_server["model"], "cpu")
    served = zeroshot.HttpModel(
        llm_server["url"], llm_server["model"], str(tmp_path / "cache"), requests_per_second=0
    )
    messages = [{"role": "user", "content": prompt + "Rank the candidates."}]
    assert served.generate(messages, 24) == local.generate(messages, 24)
    scores = zeroshot.ZeroShotScorer(served, config).listwise(prompt, lines)
    assert np.array_equal(scores, zeroshot.ZeroShotScorer(local, config).listwise(prompt, lines))
    # Requests in flight at once give the answers asked one by one, in the order asked.
    requests = [
        ({"messages": [{"role": "user", "content": f"Say the number {k}."}], "max_tokens": 6, "temperature": 0}, zeroshot.chat_text)
        for k in range(4)
    ]  # fmt: skip
    together = served.client.request_many("chat/completions", requests, "a test", concurrency=4)
    assert together == [served.client.request("chat/completions", b, c, "a test") for b, c in requests]
    # The answers are cached by request: a server that cannot be reached is not asked again.
    offline = zeroshot.HttpModel(
        "http://127.0.0.1:9/v1", llm_server["model"], str(tmp_path / "cache"), retries=0
    )
    assert offline.generate(messages, 24) == local.generate(messages, 24)


def test_logprob_scorers_need_a_server_that_returns_logprobs(llm_server):
    served = zeroshot.HttpModel(llm_server["url"], llm_server["model"], "", requests_per_second=0, retries=1)
    with pytest.raises(MmbenchError, match="after 2 tries: no next-token log-probabilities"):
        served.next_token_logprobs("Answer:", [" A", " B"])


def test_vllm_logprob_answers_are_read():
    """Answers written by hand in the format of vLLM's /v1/completions (echo + logprobs, and the
    top log-probabilities of the next token); no vLLM server runs in these tests."""
    prompt, candidate = "Next track:\n", "A - B\n"
    echoed = {"choices": [{"logprobs": {
        "tokens": ["Next", " track", ":\n", "A", " -", " B", "\n"],
        "text_offset": [0, 4, 10, 12, 13, 15, 17],
        "token_logprobs": [None, -2.0, -1.0, -0.5, -0.25, -1.0, -0.25],
    }}]}  # fmt: skip
    assert zeroshot.echoed_logprob(echoed, prompt, candidate) == (pytest.approx(-2.0), 4)
    # A token generated after the candidate (the request asks for one) is not counted.
    for field, value in (("tokens", "C"), ("text_offset", 18), ("token_logprobs", -9.0)):
        echoed["choices"][0]["logprobs"][field].append(value)
    assert zeroshot.echoed_logprob(echoed, prompt, candidate) == (pytest.approx(-2.0), 4)
    # A server whose tokenizer adds a BOS token and counts its text in the offsets (as vLLM does
    # for Llama models): every offset moves by len("<s>"); the tokens are still found by their text.
    logprobs = echoed["choices"][0]["logprobs"]
    with_bos = {"choices": [{"logprobs": {
        "tokens": ["<s>", *logprobs["tokens"]],
        "text_offset": [0, *(o + 3 for o in logprobs["text_offset"])],
        "token_logprobs": [None, -7.0, *logprobs["token_logprobs"][1:]],
    }}]}  # fmt: skip
    assert zeroshot.echoed_logprob(with_bos, prompt, candidate) == (pytest.approx(-2.0), 4)
    # Tokens that do not spell the text sent, or one spanning the prompt and the candidate: an error.
    merged = {"choices": [{"logprobs": {
        "tokens": ["Next", " track", ":", "\nA", " -", " B", "\n"], "token_logprobs": [None, -1, -1, -1, -1, -1, -1],
    }}]}  # fmt: skip
    with pytest.raises(MmbenchError, match="spans the prompt and the candidate"):
        zeroshot.echoed_logprob(merged, prompt, candidate)
    with pytest.raises(MmbenchError, match="do not spell"):
        zeroshot.echoed_logprob(echoed, prompt, "C - D\n")
    # Sent as token ids, the candidate's tokens are the ones at the positions sent.
    assert zeroshot.echoed_token_logprobs(echoed, 3, 7) == (pytest.approx(-2.0), 4)
    with pytest.raises(MmbenchError, match="does not read the token ids as sent"):  # a BOS added to the ids
        zeroshot.echoed_token_logprobs(with_bos, 3, 7)
    top = {"choices": [{"logprobs": {"top_logprobs": [{" A": -0.1, " C": -3.0}]}}]}
    assert zeroshot.next_token_logprobs(top, [" A", " B", " C"]) == ([-0.1, -4.0, -3.0], 1)
    for bad in ({}, {"choices": [{"text": "x"}]}):
        with pytest.raises(ValueError):
            zeroshot.echoed_logprob(bad, "ab", "c")
        with pytest.raises(ValueError):
            zeroshot.next_token_logprobs(bad, [" A"])


LLAMACPP_ANSWERS = Path(__file__).parent / "data" / "llamacpp"
LLAMACPP_PROMPT = (
    "Recently played:\n- Nirvana - Come as You Are\n- Pixies - Where Is My Mind?\n"
    "This session so far:\n- Radiohead - Creep\n"
)
LLAMACPP_LINES = [
    "Weezer - Buddy Holly",
    "Mozart - Requiem",
    "Pearl Jam - Alive",
    "ABBA - Waterloo",
    "Beck - Loser",
]


@pytest.mark.llm
def test_verbalizer_over_llamacpp_matches_the_local_model(local_model, tmp_path):
    """The ``verbalizer`` through the http backend, reading the answers of a real llama.cpp
    server: llama-cpp-python 0.3.36's (``python -m llama_cpp.server --model
    SmolLM2-135M-Instruct.Q4_1.gguf --model_alias smollm2-135m-instruct``, the packaged GGUF),
    recorded in tests/data/llamacpp as the client's answer cache. The server is not started here:
    building llama-cpp-python takes longer than the CI's budget (docs/baselines.md gives the
    figure). The recording is keyed by each request's digest, so a change to what the client
    sends misses it and fails this test. To run against a live server set
    ``MMBENCH_LLAMACPP_URL`` (e.g. ``http://127.0.0.1:8012/v1``); with ``MMBENCH_LLAMACPP_RECORD=1``
    too, its answers replace the recording.

    Tolerance: llama.cpp runs the Q4_1 weights with its own quantized kernels, transformers the
    same weights dequantized to fp32. On these answers (two orders) the scores differ by at most
    0.074 nats and rank the candidates alike; with the given order alone, 0.087 nats and two
    close candidates swap. So the test allows 0.15 nats and a Kendall tau of at least 0.6.
    (The ``likelihood`` is not tested this way: llama-cpp-python's echoed prompt
    log-probabilities are shifted by one token, see docs/baselines.md.)"""
    import shutil

    from scipy.stats import kendalltau

    url = os.environ.get("MMBENCH_LLAMACPP_URL", "http://127.0.0.1:9/v1")
    if os.environ.get("MMBENCH_LLAMACPP_RECORD"):
        if "MMBENCH_LLAMACPP_URL" not in os.environ:
            pytest.fail("MMBENCH_LLAMACPP_RECORD=1 records from MMBENCH_LLAMACPP_URL, which is not set")
        shutil.rmtree(LLAMACPP_ANSWERS, ignore_errors=True)
        cache = LLAMACPP_ANSWERS
    elif "MMBENCH_LLAMACPP_URL" in os.environ:
        cache = tmp_path / "answers"
    else:
        cache = shutil.copytree(LLAMACPP_ANSWERS, tmp_path / "answers")
    served = zeroshot.HttpModel(url, "smollm2-135m-instruct", str(cache), requests_per_second=0, retries=0)
    # The two orders the recording holds: the given one and a seeded permutation; each
    # candidate's letter log-probability averaged over the two.
    orders = [np.arange(5), np.random.default_rng(0).permutation(5)]

    def averaged(model) -> np.ndarray:
        scorer, scores = (
            zeroshot.ZeroShotScorer(model, _config(scorer="verbalizer", calibrate=False)),
            np.zeros(5),
        )
        for order in orders:
            scores[order] += scorer.verbalizer(LLAMACPP_PROMPT, [LLAMACPP_LINES[i] for i in order]) / 2
        return scores

    remote, local = averaged(served), averaged(local_model)
    assert np.abs(remote - local).max() <= 0.15, (remote, local)
    assert kendalltau(remote, local).statistic >= 0.6, (remote, local)


def test_cached_answers_live_in_files_readable_without_mmbench(llm_server, tmp_path):
    served = zeroshot.HttpModel(llm_server["url"], llm_server["model"], str(tmp_path), requests_per_second=0)
    served.generate([{"role": "user", "content": "Say hi"}], 4)
    rows = [json.loads(x) for f in Path(tmp_path).glob("*.jsonl") for x in f.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["value"]["choices"][0]["message"]["content"]
