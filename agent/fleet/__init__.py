"""The COC's side of fleet operation: `commune-agent fleet ...` lists sites from their retained birth and health,
pushes signed configuration and release changes as staged rollouts, builds and publishes releases, enrols boxes."""
