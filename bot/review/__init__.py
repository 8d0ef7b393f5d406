"""Review on every platform: the desk where corrections are submitted and decided (`desk`), the
words their authors are told (`notes`), who is told of a decision (`news`), and answers given from
approved corrections (`reviewed_answers`). Each platform's cards and notifiers live with it."""
