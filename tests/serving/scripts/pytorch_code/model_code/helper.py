ORIGIN = "model_dir/code"
