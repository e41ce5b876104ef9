"""Training time per sample: single-domain vs multi-domain models (issue 6: several languages in one model
must not be slower per sample than one language by more than the gates' overhead).

Times only the training steps (forward, loss, backward, AdamW step) of the trainer's own batches over
``--epochs`` epochs of seed 0's random split, after one warm-up batch; no evaluation. Prints seconds per
training sample for each configuration and the ratios to the first one.

    OMP_NUM_THREADS=1 python bench/multidomain_speed.py --features mfcc,ge2e \\
        --config single:de --config nas:de,it --config sb:de,it --config nas:de
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import ConcatDataset

from train.config import ExperimentConfig
from train.dataset import FeatureDataset
from train.repeated_runs import load_domains
from train.fit_run import domain_info
from train.protocol import draw_split, split_indices
from train.scaling import FeatureScaler
from train.models import build_model
from train.network_trainer import Trainer, deterministic


def time_per_sample(model_name: str, domains: list[str], features: list[str], epochs: int, features_dir: str,
                    standardize: bool, split_by_domain: bool = True) -> tuple[float, int]:
    config = ExperimentConfig(domains=domains, features=features, model=model_name, features_dir=features_dir)
    config.multidomain.split_by_domain = split_by_domain
    domain_data, feats = load_domains(config)
    parts = []
    for d, data in enumerate(domain_data):
        idx = split_indices(draw_split(data, "random", 0))
        scaler = FeatureScaler.fit(data, idx["train"]) if standardize else None
        parts.append(FeatureDataset(data, idx["train"], data.classes, domain=d, scaler=scaler))
    dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    torch.manual_seed(0)
    model = build_model(model_name, config, [domain_info(x, feats) for x in domain_data])
    trainer = Trainer(model, config.train, [x.classes for x in domain_data], [config.language(x.spec.language).alpha for x in domain_data])
    loader = trainer.loader(dataset, train=True)
    model.train()
    seconds, samples, warm = 0.0, 0, False
    with deterministic():
        for epoch in range(1, epochs + 1):
            loader.batch_sampler.set_epoch(epoch)
            for batch in loader:
                start = time.perf_counter()
                loss, _, _ = trainer.loss(model(batch), batch)
                trainer.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                trainer.optimizer.step()
                if warm:
                    seconds += time.perf_counter() - start
                    samples += len(batch)
                warm = True
    return seconds / samples, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", required=True,
                        help="MODEL:LANG,LANG (repeatable); MODEL+joint encodes a mixed batch in one call (no split by domain)")
    parser.add_argument("--features", default="mfcc,ge2e")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--features-dir", default="features")
    parser.add_argument("--standardize", action="store_true")
    args = parser.parse_args()
    features = args.features.split(",")
    results = []
    for spec in args.config:
        model, domains = spec.split(":", 1)
        joint = model.endswith("+joint")
        per_sample, samples = time_per_sample(model.removesuffix("+joint"), domains.split(","), features, args.epochs,
                                              args.features_dir, args.standardize, split_by_domain=not joint)
        results.append((spec, per_sample, samples))
        print(f"{spec:>16}: {1000 * per_sample:7.2f} ms per training sample ({samples} samples timed)", flush=True)
    base = results[0][1]
    for spec, per_sample, _ in results[1:]:
        print(f"{spec} / {results[0][0]}: {per_sample / base:.2f}x")


if __name__ == "__main__":
    main()
