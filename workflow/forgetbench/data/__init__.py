"""The domain-data layer: one canonical record format (records), the MedCalc-style generator built on the
`medcalc-bench` calculators (medcalc_synth), loaders for local files and hub datasets (sources), and the
prompt/response text both supervision formats train and evaluate on (prompts)."""
