"""Zoo: the backbones every source offers, their metadata and whether the weights are here."""

import streamlit as st

from dashboard import _ui, data

COLUMNS = ("name", "source", "architecture", "pretrained_tag", "input_size", "num_classes",
           "license", "weights_available", "weights_location", "paper_name")


def rows(models: list[dict]) -> list[dict]:
    return [{k: ("x".join(map(str, m[k])) if k == "input_size" and m[k] else m.get(k))
             for k in COLUMNS} for m in models]


st.title("Zoo")
with _ui.guard():
    query = st.text_input("Search backbones", placeholder="resnet5* or convnext", key="zoo_q")
    left, middle, right = st.columns(3)
    source = left.selectbox("Source", ["all", *data.zoo_sources()], key="zoo_source")
    pretrained = middle.toggle("Published weights only", value=True, key="zoo_pretrained")
    available = right.toggle("Weights on this machine only", key="zoo_available")
    with st.spinner("Reading the model sources..."):
        models = data.zoo_models(query or None, None if source == "all" else source,
                                 pretrained, available)
    local = sum(1 for m in models if m["weights_available"])
    st.caption(f"{len(models):,} models; weights on this machine for {local:,}.")
    st.dataframe(rows(models), hide_index=True, column_config={
        "weights_available": st.column_config.CheckboxColumn("weights here"),
        "pretrained_tag": "tag", "num_classes": "classes"})
