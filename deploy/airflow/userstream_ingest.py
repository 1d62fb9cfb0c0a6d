"""userstream on Airflow 3: for teams whose schedules already live in Airflow.

userstream schedules itself (``[[jobs]]``, ``userstream run``); this DAG is for when Airflow owns
the schedule instead. Each DAG run makes one manual run of a userstream job, then processes the
log into the store:

* ``ingest`` runs ``userstream jobs trigger JOB``. userstream records the run in its own run
  history (``userstream jobs runs``), retries it with backoff as the job says, and enforces the
  job's timeout and no-overlap rule, across every process and host sharing the history. The exit
  code carries the outcome: 0 succeeded, 1 failed or timed out, 99 skipped (another run of the
  job was still going under ``overlap = "skip"``, or ``max_queued`` runs already waited under
  ``overlap = "queue"``), which ``skip_on_exit_code`` maps to
  Airflow's *skipped*. The run's JSON summary is the last line of stdout, so it becomes the task's
  XCom (``return_value``).
* ``process`` runs ``userstream process``: everything in the log, into the store, then exits.

Airflow's own retries stay off: userstream already retries inside the run, and an Airflow retry
would be a new manual run on top. Stopping the task (``on_kill``) sends SIGTERM: userstream keeps
the page in hand, records the run as failed ("stopped by a signal") and exits.

Settings:

* Airflow Variable ``userstream_bin`` (or ``AIRFLOW_VAR_USERSTREAM_BIN``): the binary, default
  ``userstream`` on PATH. Not a ``USERSTREAM_*`` variable: userstream reads every one of those
  as a configuration key, and refuses one it does not know;
* ``USERSTREAM_CONFIG`` on the workers: the configuration file with the ``[[jobs]]`` entry;
* params ``job`` (default ``airflow``) and ``users`` (default: the job's size).
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param

SKIPPED = 99

# `exec`: the userstream process replaces the shell, so on_kill's SIGTERM reaches it directly.
BINARY = "{{ var.value.get('userstream_bin', 'userstream') }}"
INGEST = f'exec "{BINARY}" -q jobs trigger "$JOB" ${{USERS:+--users "$USERS"}}'
PROCESS = f'exec "{BINARY}" -q process'

env = {
    "JOB": "{{ params.job }}",
    "USERS": "{{ params.users if params.users else '' }}",
}

with DAG(
    dag_id="userstream_ingest",
    description="Fetch users with a userstream job, then process them into the store",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "job": Param("airflow", type="string", description="A [[jobs]] name in USERSTREAM_CONFIG"),
        "users": Param(None, type=["null", "integer"], minimum=1, description="Users to fetch"),
    },
    default_args={"retries": 0},
    tags=["userstream"],
) as dag:
    ingest = BashOperator(
        task_id="ingest",
        bash_command=INGEST,
        env=env,
        append_env=True,
        skip_on_exit_code=SKIPPED,
        do_xcom_push=True,
        execution_timeout=pendulum.duration(hours=2),
    )
    process = BashOperator(
        task_id="process",
        bash_command=PROCESS,
        env=env,
        append_env=True,
        do_xcom_push=False,
        execution_timeout=pendulum.duration(hours=2),
    )
    ingest >> process
