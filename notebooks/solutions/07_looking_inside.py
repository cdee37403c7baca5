"""Worked solution to notebook 07's exercise: the loss with two heads zeroed in one run.

``tests/test_solutions.py`` runs it through the notebook's ``check_two_heads_loss``.
"""


def two_heads_loss(mean_loss, ablation_hooks, first, other):
    return mean_loss(hooks=ablation_hooks([first, other]))  # one hook set, both heads zeroed


SOLUTIONS = {"check_two_heads_loss": two_heads_loss}


def nothing_zeroed(mean_loss, ablation_hooks, first, other):
    return mean_loss()


def only_the_other(mean_loss, ablation_hooks, first, other):
    return mean_loss(hooks=ablation_hooks([other]))


def single_rises_added(mean_loss, ablation_hooks, first, other):
    clean = mean_loss()
    return (mean_loss(hooks=ablation_hooks([first])) - clean) + (mean_loss(hooks=ablation_hooks([other])) - clean) + clean


WRONG = {"check_two_heads_loss": [(nothing_zeroed, "nothing zeroed"), (only_the_other, "alone zeroed"),
                                  (single_rises_added, "adds the two single rises")]}
