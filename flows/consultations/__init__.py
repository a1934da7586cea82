"""Quick consultations: questions, answers, results for the council."""
