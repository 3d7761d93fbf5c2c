from t2s_fast.cli import main

main()
