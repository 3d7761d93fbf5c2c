from t2s_fast.cli import main

if __name__ == "__main__":  # guarded: a spawned child (vLLM's engine core) re-imports this module
    main()
