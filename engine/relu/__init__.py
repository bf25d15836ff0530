"""Small ReLU nets (paper Sec. 3.2): the compiled nets and their SGD, the 1D regression (Fig. 4, 9, 10) and the
teacher-student nets (Fig. 5, 6, 11), with their claims.
"""
