"""mmagent.prompts"""
