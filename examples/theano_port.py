"""The tutorial's Theano RNN language model, run on symgraph by changing only the imports.

This is the code Theano users wrote for part 2 of the RNN tutorial series (``RNNTheano``,
``train_with_sgd``, ``generate_sentence``), kept in that style on purpose: shared variables,
``theano.scan`` over the words, ``T.grad`` for back-propagation through time and
``theano.function`` with ``updates`` for the SGD step. The model class is the original with
only the two imports below changed. Elsewhere: Python 3 prints, the data come from
``models.data`` (the tutorial read a Reddit CSV with NLTK; ``--data`` still takes a CSV), and
sampling renormalises the float32 probabilities and caps the sentence length.

    python examples/theano_port.py                    # a few hundred chitchat sentences
    python examples/theano_port.py --data my.csv      # your own comments (a `body` column)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `models` when run as a script

import symgraph as theano  # noqa: E402  (was: import theano)
import symgraph.tensor as T  # noqa: E402  (was: import theano.tensor as T)


class RNNTheano:
    def __init__(self, word_dim, hidden_dim=100, bptt_truncate=4):
        # Assign instance variables
        self.word_dim = word_dim
        self.hidden_dim = hidden_dim
        self.bptt_truncate = bptt_truncate
        # Randomly initialize the network parameters in +-1/sqrt(n), n = incoming connections
        U = np.random.uniform(
            -np.sqrt(1.0 / word_dim), np.sqrt(1.0 / word_dim), (hidden_dim, word_dim)
        )
        V = np.random.uniform(
            -np.sqrt(1.0 / hidden_dim), np.sqrt(1.0 / hidden_dim), (word_dim, hidden_dim)
        )
        W = np.random.uniform(
            -np.sqrt(1.0 / hidden_dim), np.sqrt(1.0 / hidden_dim), (hidden_dim, hidden_dim)
        )
        # Theano: Created shared variables
        self.U = theano.shared(name="U", value=U.astype(theano.config.floatX))
        self.V = theano.shared(name="V", value=V.astype(theano.config.floatX))
        self.W = theano.shared(name="W", value=W.astype(theano.config.floatX))
        # We store the Theano graph here
        self.theano = {}
        self.__theano_build__()

    def __theano_build__(self):
        U, V, W = self.U, self.V, self.W
        x = T.ivector("x")
        y = T.ivector("y")

        def forward_prop_step(x_t, s_t_prev, U, V, W):
            # s_t = tanh(U x_t + W s_{t-1}); U[:, x_t] is U times the one-hot vector of x_t
            s_t = T.tanh(U[:, x_t] + W.dot(s_t_prev))
            # o_t = softmax(V s_t): the distribution of the next word
            o_t = T.nnet.softmax(V.dot(s_t))
            return [o_t[0], s_t]

        # truncate_gradient keeps Theano's meaning: only the last `bptt_truncate` steps of the
        # sentence get a gradient (the NumPy tutorial's bptt truncates each loss term instead)
        [o, s], updates = theano.scan(
            forward_prop_step,
            sequences=x,
            outputs_info=[None, dict(initial=T.zeros(self.hidden_dim))],
            non_sequences=[U, V, W],
            truncate_gradient=self.bptt_truncate,
            strict=True,
        )

        prediction = T.argmax(o, axis=1)
        o_error = T.sum(T.nnet.categorical_crossentropy(o, y))

        # Gradients
        dU = T.grad(o_error, U)
        dV = T.grad(o_error, V)
        dW = T.grad(o_error, W)

        # Assign functions
        self.forward_propagation = theano.function([x], o)
        self.predict = theano.function([x], prediction)
        self.ce_error = theano.function([x, y], o_error)
        self.bptt = theano.function([x, y], [dU, dV, dW])

        # SGD
        learning_rate = T.scalar("learning_rate")
        self.sgd_step = theano.function(
            [x, y, learning_rate],
            [],
            updates=[
                (self.U, self.U - learning_rate * dU),
                (self.V, self.V - learning_rate * dV),
                (self.W, self.W - learning_rate * dW),
            ],
        )

    def calculate_total_loss(self, X, Y):
        return np.sum([self.ce_error(x, y) for x, y in zip(X, Y)])

    def calculate_loss(self, X, Y):
        # Divide calculate_loss by the number of words
        num_words = np.sum([len(y) for y in Y])
        return self.calculate_total_loss(X, Y) / float(num_words)


def train_with_sgd(model, X_train, y_train, learning_rate=0.005, nepoch=1, evaluate_loss_after=5):
    # We keep track of the losses so we can plot them later
    losses = []
    num_examples_seen = 0
    for epoch in range(nepoch):
        # Optionally evaluate the loss
        if epoch % evaluate_loss_after == 0:
            loss = model.calculate_loss(X_train, y_train)
            losses.append((num_examples_seen, loss))
            now = time.strftime("%Y-%m-%d %H:%M:%S")
            print(
                f"{now}: Loss after num_examples_seen={num_examples_seen} epoch={epoch}: {loss:f}"
            )
            # Adjust the learning rate if loss increases
            if len(losses) > 1 and losses[-1][1] > losses[-2][1]:
                learning_rate = learning_rate * 0.5
                print(f"Setting learning rate to {learning_rate:f}")
            sys.stdout.flush()
        # For each training example...
        for i in range(len(y_train)):
            # One SGD step
            model.sgd_step(X_train[i], y_train[i], learning_rate)
            num_examples_seen += 1
    losses.append((num_examples_seen, model.calculate_loss(X_train, y_train)))
    print(f"Loss after num_examples_seen={num_examples_seen}: {losses[-1][1]:f}")
    return losses


def generate_sentence(model, word_to_index, index_to_word, max_length=30):
    unknown_token, sentence_start_token = "UNKNOWN_TOKEN", "SENTENCE_START"
    sentence_end_token = "SENTENCE_END"
    # We start the sentence with the start token
    new_sentence = [word_to_index[sentence_start_token]]
    # Repeat until we get an end token (or the sentence gets too long)
    while not new_sentence[-1] == word_to_index[sentence_end_token]:
        if len(new_sentence) >= max_length:
            break
        next_word_probs = model.forward_propagation(np.asarray(new_sentence, dtype="int32"))
        # float32 probabilities may sum to slightly more than 1; multinomial wants <= 1
        p = next_word_probs[-1].astype("float64")
        p /= p.sum()
        sampled_word = word_to_index[unknown_token]
        # We don't want to sample unknown words (or another start token)
        while sampled_word in (word_to_index[unknown_token], word_to_index[sentence_start_token]):
            samples = np.random.multinomial(1, p)
            sampled_word = int(np.argmax(samples))
        new_sentence.append(sampled_word)
    sentence_str = [index_to_word[x] for x in new_sentence[1:-1]]
    return sentence_str


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", default="chitchat", help="'chitchat' (default), a .csv or a text file"
    )
    ap.add_argument("--max-comments", type=int, default=300, help="comments to read")
    ap.add_argument("--sentences", type=int, default=400, help="training sentences")
    ap.add_argument("--vocabulary-size", type=int, default=500)
    ap.add_argument("--hidden-dim", type=int, default=50)
    ap.add_argument("--bptt-truncate", type=int, default=4)
    ap.add_argument("--learning-rate", type=float, default=0.005)
    ap.add_argument("--nepoch", type=int, default=10)
    ap.add_argument("--samples", type=int, default=5, help="sentences to generate")
    ap.add_argument("--senten-min-length", type=int, default=4, help="words per sample, at least")
    ap.add_argument("--seed", type=int, default=10)
    args = ap.parse_args(argv)
    np.random.seed(args.seed)

    from models.data import load_corpus

    corpus = load_corpus(
        args.data, vocab_size=args.vocabulary_size, max_comments=args.max_comments, valid_fraction=0
    )
    X_train, y_train = corpus.X_train[: args.sentences], corpus.Y_train[: args.sentences]
    index_to_word = corpus.vocab.index_to_word
    word_to_index = corpus.vocab.word_to_index
    print(f"Using vocabulary size {len(index_to_word)}; {len(X_train)} training sentences.")
    example = " ".join(index_to_word[x] for x in X_train[0])
    print(f"Example sentence: '{example}'")

    t0 = time.perf_counter()
    model = RNNTheano(
        len(index_to_word), hidden_dim=args.hidden_dim, bptt_truncate=args.bptt_truncate
    )
    t1 = time.perf_counter()
    print(f"Built and compiled the model in {1e3 * (t1 - t0):.0f} ms")

    losses = train_with_sgd(
        model,
        X_train,
        y_train,
        args.learning_rate,
        args.nepoch,
        evaluate_loss_after=max(1, args.nepoch // 5),
    )
    seconds = time.perf_counter() - t1
    print(f"Trained in {seconds:.1f} s (loss evaluations included)")
    samples = []
    for _ in range(args.samples):
        sent = []
        # We want long sentences, not sentences with one or two words (at most 20 tries)
        for _ in range(20):
            sent = generate_sentence(model, word_to_index, index_to_word)
            if len(sent) >= args.senten_min_length:
                break
        samples.append(sent)
        print(" ".join(sent))
    return {"losses": losses, "samples": samples, "model": model}


if __name__ == "__main__":
    main()
