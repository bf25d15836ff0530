"""Streamlit entry point: one page per setting of the paper (st.navigation), sidebar with device and cache."""

from pathlib import Path

import streamlit as st

from ui.jobs import warm_up_kernels
from ui.shell import shell_running
from ui.sidebar import status_sidebar

ICON = Path(__file__).parent / "docs" / "favicon.png"  # served from here: no request leaves the machine
st.set_page_config(page_title="Large-step SGD learns sparse features", page_icon=str(ICON), layout="wide")

# st.navigation declares the pages explicitly. A deep link opened on a fresh server runs a pages/ file alone
# (Streamlit's legacy multipage mode): each page starts with ui.shell.ensure_shell(), which then runs this file.
pages = [
    st.Page("pages/home.py", title="Overview", icon=":material/home:", default=True),
    st.Page("pages/toy_1d.py", title="1 · Toy model: bouncing", icon=":material/sports_tennis:"),
    st.Page("pages/diagonal.py", title="2 · Diagonal linear nets", icon=":material/trending_down:"),
    st.Page("pages/relu_1d.py", title="3 · ReLU net in 1D: kinks", icon=":material/show_chart:"),
    st.Page("pages/teacher_student.py", title="4 · Teacher-student: neurons", icon=":material/scatter_plot:"),
    st.Page("pages/resnet.py", title="5 · ResNets on CIFAR", icon=":material/grid_view:"),
    st.Page("pages/sweeps.py", title="6 · Sweeps", icon=":material/grid_on:"),
    st.Page("pages/reproduction.py", title="7 · Reproduction", icon=":material/fact_check:"),
]
page = st.navigation(pages)
warm_up_kernels()
status_sidebar()
with shell_running():
    page.run()
