"""Worked solution to notebook 01's exercise: one byte-level BPE merge step.

``tests/test_solutions.py`` runs it through the notebook's ``check_merge_step``.
"""

NO_MERGE = float("inf")  # the "rank" of a pair merges.txt does not list


def my_merge_step(parts, ranks):
    """Join the leftmost occurrence of the lowest-ranked adjacent pair; the parts unchanged when none merges."""
    pair_ranks = [ranks.get((a, b), NO_MERGE) for a, b in zip(parts[:-1], parts[1:])]
    if not pair_ranks or min(pair_ranks) == NO_MERGE:
        return list(parts)  # BPE is done
    i = pair_ranks.index(min(pair_ranks))  # index() finds the leftmost
    return parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]


# check name in the notebook -> the function that passes it
SOLUTIONS = {"check_merge_step": my_merge_step}


# Deliberately wrong merge steps, each with words its check's message must contain (tests/test_solutions.py).
def highest_rank_first(parts, ranks):  # max instead of min
    pairs = [(ranks[(a, b)], i) for i, (a, b) in enumerate(zip(parts[:-1], parts[1:])) if (a, b) in ranks]
    if not pairs:
        return list(parts)
    i = max(pairs)[1]
    return parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]


def first_known_pair(parts, ranks):  # the leftmost pair that merges, whatever its rank
    for i, pair in enumerate(zip(parts[:-1], parts[1:])):
        if pair in ranks:
            return parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
    return list(parts)


def every_occurrence(parts, ranks):  # GPT-2's encoder.py: all occurrences of the best pair in one turn
    pair_ranks = [ranks.get(pair, NO_MERGE) for pair in zip(parts[:-1], parts[1:])]
    if not pair_ranks or min(pair_ranks) == NO_MERGE:
        return list(parts)
    best = (parts[pair_ranks.index(min(pair_ranks))], parts[pair_ranks.index(min(pair_ranks)) + 1])
    out = []
    for part in parts:
        if out and (out[-1], part) == best:
            out[-1] += part
        else:
            out.append(part)
    return out


def in_place(parts, ranks):  # right merge, but edits the caller's list
    new = my_merge_step(parts, ranks)
    parts[:] = new
    return parts


def none_when_done(parts, ranks):  # forgets to return the parts when nothing merges
    new = my_merge_step(parts, ranks)
    return new if new != parts else None


WRONG = {"check_merge_step": [(highest_rank_first, "lowest rank"), (first_known_pair, "lowest rank"),
                              (every_occurrence, "leftmost"), (in_place, "changed the list"),
                              (none_when_done, "unchanged")]}
