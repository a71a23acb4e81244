"""mmagent.tools"""
