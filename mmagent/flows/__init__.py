"""mmagent.flows"""
