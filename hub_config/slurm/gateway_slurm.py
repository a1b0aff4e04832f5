# dask-gateway's own Slurm backend (EOLAB_HUB_GATEWAY_BACKEND=slurm, multiuser mode only): each
# cluster's scheduler and workers are Slurm jobs of the user, submitted through
# `sudo -nHu <user> dask-gateway-jobqueue-launcher`; certificates are staged in the user's home.
# Executed by dask_gateway_config.py, which defines `c`, `S` and `os`.
SLURM_BIN = S.slurm_bin or "/usr/bin"  # noqa: F821
c.DaskGateway.backend_class = "eolab.compute._server.EolabSlurmBackend"  # noqa: F821
# The launcher runs with an empty environment: wrappers in slurm_bin carry SLURM_CONF.
c.SlurmBackend.submit_command = os.path.join(SLURM_BIN, "sbatch")  # noqa: F821
c.SlurmBackend.cancel_command = os.path.join(SLURM_BIN, "scancel")  # noqa: F821
c.SlurmBackend.status_command = os.path.join(SLURM_BIN, "squeue")  # noqa: F821
c.SlurmBackend.dask_gateway_jobqueue_launcher = os.path.join(S.venv_bin, "dask-gateway-jobqueue-launcher")  # noqa: F821
c.SlurmClusterConfig.partition = S.slurm_partition or ""  # noqa: F821
c.SlurmClusterConfig.staging_directory = "{home}/.dask-gateway/"  # noqa: F821
