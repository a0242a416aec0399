"""The project's network inside real t5x (`hyperprompt/gin/t5x/*.gin`); needs t5x."""
