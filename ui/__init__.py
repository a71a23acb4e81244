"""mmagent.ui"""
