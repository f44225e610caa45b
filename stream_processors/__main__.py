"""`python -m stream_processors`: run the Faust worker with every agent."""

from cctv.context import Context
from cctv.settings import Settings
from stream_processors.app import run_worker

if __name__ == "__main__":
    settings = Settings.load()
    run_worker(Context.load(settings), loglevel=settings.log_level)
