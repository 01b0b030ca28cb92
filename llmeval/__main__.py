from llmeval.cli.main import main

main()
