"""mmagent.orchestration"""
