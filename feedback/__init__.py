"""The SQL store: questions, answers, votes, corrections, adapter versions, retrain runs."""
