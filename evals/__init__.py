"""mmagent.evals"""
