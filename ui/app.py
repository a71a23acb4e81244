"""Entry page of the Streamlit app (`mmagent ui` runs ``streamlit run`` on this file).

Only light modules are imported here; torch, transformers, Chroma and Whisper load inside the
cached resource loaders (ui/resources.py) the first time a page needs them.
"""

from __future__ import annotations

import logging
from importlib.resources import files

import streamlit as st
from mmagent.ui import chat, eval_page, memory_page

log = logging.getLogger("mmagent.ui")
if not log.handlers:  # Streamlit configures its own loggers only; make ours visible in the server log
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

# A shipped file, served by this server: a ":material/...:" or emoji icon makes the browser fetch the
# favicon from a font CDN, and nothing may leave the machine.
ICON = str(files("mmagent.assets").joinpath("icon.png"))
st.set_page_config(page_title="mmagent", page_icon=ICON, layout="wide")
page = st.navigation([
    st.Page(chat.render, title="Chat", icon=":material/chat:", url_path="chat", default=True),
    st.Page(memory_page.render, title="Memory", icon=":material/database:", url_path="memory"),
    st.Page(eval_page.render, title="Evals", icon=":material/analytics:", url_path="evals"),
])
page.run()
