"""Train RecBole's SASRec on `mmbench export --format recbole` and write its test rankings.

    python benchmarks/recbole_sasrec.py EXPORT_DIR OUT_DIR [--epochs 1]

Run it with a Python that has RecBole (1.2.1 needs numpy below 2; see docs/evaluation.md), not
mmbench's own. It trains SASRec with the export's settings (`lastfm1k-mm.yaml`: the benchmark's
split, test rows = the next-track test instances), prints RecBole's own test NDCG@10, Recall@10
and MRR@10 (full ranking), and writes OUT_DIR/predictions.jsonl: each test instance's top 100
from the same model's scores, which `mmbench evaluate` scores. The two NDCG@10 agree (RecBole
ranks the whole catalogue and masks nothing, as `mmbench evaluate` expects of a prediction), and
OUT_DIR/recbole.json records RecBole's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("export", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # RecBole reads the command line too
    args.export, args.out = args.export.resolve(), args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    os.chdir(args.out)  # RecBole writes its log/ and log_tensorboard/ folders in the working directory
    # RecBole reads DATA_PATH/DATASET/DATASET.*: the export's files are named lastfm1k-mm.*
    data_path = args.out / "data"
    data_path.mkdir(exist_ok=True)
    link = data_path / "lastfm1k-mm"
    if not link.exists():
        link.symlink_to(args.export.resolve(), target_is_directory=True)
    config = Config(
        model="SASRec",
        dataset="lastfm1k-mm",
        config_file_list=[str(args.export / "lastfm1k-mm.yaml")],
        config_dict={
            "data_path": str(data_path),
            "epochs": args.epochs,
            "train_neg_sample_args": None,
            "loss_type": "CE",
            "seed": 0,
            "reproducibility": True,
            "device": "cpu",
            "use_gpu": False,
            "show_progress": False,
            "checkpoint_dir": str(args.out / "checkpoints"),
            "log_wandb": False,
            "state": "WARNING",
            "metric_decimal_place": 6,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = SASRec(config, train.dataset).to(config["device"])
    trainer = Trainer(config, model)
    # RecBole 1.2.1 reloads its best checkpoint with torch.load's old default, which torch 2.6
    # refused: the final model is evaluated (with one epoch, the only one).
    trainer.fit(train, valid, saved=False, show_progress=False)
    result = trainer.evaluate(test, load_best_model=False, show_progress=False)
    figures = {k: float(v) for k, v in result.items()}
    print(json.dumps(figures))
    (args.out / "recbole.json").write_text(json.dumps(figures, indent=1) + "\n")

    model.eval()
    tokens = dataset.field2id_token
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    lines = []
    with torch.no_grad():
        for batch in test:
            interaction = batch[0].to(config["device"])
            scores = model.full_sort_predict(interaction).view(len(interaction), -1)
            scores[:, 0] = -float("inf")  # the padding item
            top = torch.topk(scores, 100, dim=1).indices.cpu().numpy()
            for row, ranking in zip(interaction[uid].cpu().numpy(), top, strict=True):
                lines.append(
                    json.dumps(
                        {
                            "instance_id": str(tokens[uid][row]),
                            "predictions": [str(tokens[iid][i]) for i in ranking],
                        }
                    )
                )
    (args.out / "predictions.jsonl").write_text("\n".join(sorted(lines)) + "\n")


if __name__ == "__main__":
    main()
