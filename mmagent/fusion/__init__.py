"""mmagent.fusion"""
