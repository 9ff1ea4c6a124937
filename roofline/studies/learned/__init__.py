"""A learned utilization predictor beside the analytic one (issue 15).

The utilization-prediction study (DESIGN.md, "Graph-feature utilization
predictor") fed seven features of a model graph (conv, linear, activation and
other layer counts, model size in MB, GFLOPs, batch size) to a random forest
and reached RMSLE 0.154 on 81 workloads split at random. This package
reproduces that method on the public timm benchmark tables and adds what the
study lacked: the analytic model's own outputs as features, and the GPU's
and engine's figures, so that one model can be asked about a GPU it was not
trained on.

* ``features``: the features of one (network, target, batch), the family of
  a model name, and the features table (CSV, one row per measurement) that
  training reads and ``roofline learn`` writes.
* ``training``: fitting (scikit-learn random forest, gradient boosting, a
  linear baseline), the family and held-out-GPU splits, RMSLE / MdAPE /
  Spearman, the comparison of feature sets, and the default model, trained
  from the shipped table at first use and cached in the user's cache dir.
"""
