"""The worker process: APScheduler running the jobs of every feature (SMS, EDC pushes), never inside the web app."""
