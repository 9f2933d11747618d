"""IFEval's scoring for fb_ifeval.yaml: lm-eval's own checkers (lm_eval/tasks/ifeval/utils.py and its
instructions), imported once NLTK can find its punkt_tab data offline (forgetbench.evaluation.punkt_data)."""

from forgetbench.evaluation.punkt_data import ifeval_checkers

_utils = ifeval_checkers()
process_results = _utils.process_results
agg_inst_level_acc = _utils.agg_inst_level_acc
