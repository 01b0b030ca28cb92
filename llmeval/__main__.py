from llmeval.cli import main

main()
