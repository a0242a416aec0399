"""hyperprompt: task-conditioned multi-task learning on T5, in JAX/Flax."""

import setuptools

setuptools.setup(
    name="hyperprompt",
    version="0.1.0",
    description=(
        "HyperPrompt, HyperGrid, Adapters/HyperFormer, Prompt Tuning and ATTEMPT "
        "side by side on one T5 backbone and one trainer."
    ),
    python_requires=">=3.10",
    packages=(
        setuptools.find_packages(include=["hyperprompt", "hyperprompt.*"])
        + ["hyperprompt.tasks"]
    ),
    package_dir={"hyperprompt.tasks": "tasks"},
    # The gin files are data inside the package (hyperprompt/gin/, no __init__.py), found
    # from the package's own folder in editable and regular installs alike (cli.gin_root).
    package_data={"hyperprompt": ["gin/*/*.gin", "paper_tables/*.json"]},
    install_requires=[
        "jax>=0.10",
        "flax>=0.12",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12",
        "seqio>=0.0.20",
        "clu>=0.0.12",
        "gin-config>=0.5",
        "filelock>=4.3",  # SoftFileLock: pid + host owner records, stale locks taken over
        "tensorflow>=2.21",
        "tensorboard>=2.21",
        "numpy>=2",
        "tqdm>=4.66",
        "rich>=13",
        "matplotlib>=3.8",
        "safetensors>=0.4",
        "huggingface_hub>=0.20",  # hub ids as `convert --src` / pretrained.load sources
        "msgpack>=1.0",
        "tensorstore>=0.1.60",
        "scikit-learn>=1.5",
        "scipy>=1.11",
    ],
    extras_require={
        # torch CPU 2.13.0 is the build the offline HF conversion tests run against.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff==0.17.6", "torch==2.13.0",
                 "transformers>=5", "safetensors>=0.4"],
        "torch": ["torch==2.13.0", "transformers>=5", "safetensors>=0.4"],
        "gpu": ["jax[cuda12]>=0.10"],
        "tpu": ["jax[tpu]>=0.10"],
    },
    entry_points={"console_scripts": ["hyperprompt=hyperprompt.cli:main"]},
)
