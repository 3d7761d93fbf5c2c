"""Self-consistency voting executes every sample in one executor pool, prepared the way the scorer prepares a
prediction, so the vote and the score agree on which results are equal."""

from __future__ import annotations

from t2s_fast.evaluate.config import EvalConfig
from t2s_fast.evaluate.questions import Question
from t2s_fast.evaluate.scoring import choose_by_vote, execute_question_samples


def test_vote_groups_results_by_the_scorers_rules(spider1_dir, tmp_path):
    db = spider1_dir / "database" / "concert_singer" / "concert_singer.sqlite"
    q = Question(qid="q1", db_id="concert_singer", question="Countries of singers?", gold="SELECT country FROM singer",
                 db_path=db)
    samples = [{"sql": "SELECT count(*) FROM singer"},          # its own group
               {"sql": "SELECT DISTINCT country FROM singer"},  # equal to the next once DISTINCT is stripped,
               {"sql": "SELECT country FROM singer"},           # as the scorer strips it
               {"sql": "SELECT nonsense FROM"},                 # invalid: does not vote
               {"sql": ""}]                                      # empty: does not vote
    cfg = EvalConfig(base_model="m", out_dir=str(tmp_path), spider_dir=str(spider1_dir), include_base=True,
                     n_samples=5, temperature=0.7,
                     workers=2)
    [results] = execute_question_samples(cfg, [(q, samples)])
    assert results[4] is None and not results[3].ok
    pick, vote = choose_by_vote(samples, results)
    assert pick["sql"] == "SELECT DISTINCT country FROM singer"  # the larger group; its earliest sample
    assert vote == {"valid": 3, "votes": 2, "groups": 2}
